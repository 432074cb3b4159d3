"""Task finalization: decide a task's end (complete, blocked with a dead letter, or wait)."""
