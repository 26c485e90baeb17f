"""Benchmarks: the hub against its own reference points (raw consumers, naive Faust), in one run.

Run with ``python -m bench.run [--quick] [--profile]`` (``make bench`` / ``make bench-quick``).
"""
