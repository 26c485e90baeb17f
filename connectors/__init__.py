"""Connectors: ways for agency events to reach the hub (file import, HTTP, callbacks, simulator).

``connectors`` depends on ``hub`` (contracts, address, engine config, pipeline client configs),
never the reverse; it never imports ``tools``, ``hubctl``, ``bench`` or ``tests``. Producers
only: nothing here consumes the hub's topics.
"""
