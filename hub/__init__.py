"""hub: correlates the Groningen recovery agencies' case events per address and building."""

__version__ = "0.1.0"
