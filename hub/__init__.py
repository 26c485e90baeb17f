"""hub: correlates the Groningen recovery agencies' case events per address and building.

The shipped product: the pure domain (``contracts``, ``address``, ``engine``; ``oracle`` chains
them in memory), the Kafka wiring (``pipeline``, ``agents``), the read side (``answers``) and
operations (``settings``, ``metrics``, ``health``, ``logs``). Imports third-party libraries and
itself only, never ``connectors``, ``tools``, ``hubctl``, ``bench`` or ``tests``
(``tests/unit/test_layering.py`` checks every import rule stated in these docstrings).
"""

__version__ = "0.1.0"
