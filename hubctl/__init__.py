"""hubctl: the ``hub`` command line (typer), which composes everything else.

``main.py`` holds the app (broker lifecycle, worker, topics, simulate, demo, register) and
``answers.py`` the read-side commands (alerts, dossier, dlq, status). May import ``hub``,
``connectors`` and ``tools``; nothing imports ``hubctl`` except its own entry points and tests.
"""
