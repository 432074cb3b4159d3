"""Event systems: queue listeners and timers that turn what happens into commands."""
