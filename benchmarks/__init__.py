"""Benchmarks: each measures against its anchor in the same run and checks its targets.

Run one with `python3 ci/dev.py bench NAME` (which runs `python -m benchmarks.NAME`).
"""
