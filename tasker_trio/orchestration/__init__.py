"""Orchestration: the actors, services and pure support logic that drive tasks to completion."""
