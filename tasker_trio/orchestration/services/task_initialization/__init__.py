"""Task initialization: template lookup, context check, identity, graph creation, first enqueue."""
