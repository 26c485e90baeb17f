"""Faust agents: thin wiring from topics to the runtime (and through it to the pure engine)."""
