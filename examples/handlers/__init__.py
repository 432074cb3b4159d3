"""Step handlers of the example templates (examples/templates/)."""
