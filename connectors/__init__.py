"""Connectors: ways for agency events to reach the hub (file import, HTTP, callbacks, simulator)."""
