"""Developer and operator tools shipped with the CLI: the local Kafka launcher and ``hub demo``.

May import ``hub`` and ``connectors`` (the demo publishes simulated traffic); never imported by
``hub`` or ``connectors``. Only ``hubctl`` (the command line) and ``bench``/``tests`` import it.
"""
