"""Benchmarks: the hub against its own reference points (raw consumers, naive Faust), in one run.

Run with ``python -m bench.run [--quick] [--profile]`` (``make bench`` / ``make bench-quick``);
micro-benchmarks: ``python -m bench.engine_synthetic`` (the engine) and ``python -m bench.address``
(the address hot path). May import everything except ``tests``; nothing imports ``bench``.
"""
