"""``python -m hubctl ...``: the ``hub`` console script (test harnesses start workers so)."""

from hubctl.main import app

app(prog_name="hub")
