"""Faust agents: thin wiring from topics to the runtime (and through it to the pure engine).

May import Faust, ``hub.pipeline`` and the domain packages; never ``connectors``, ``tools`` or
``hubctl``.
"""
