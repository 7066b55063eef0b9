"""Benchmarks of the coach's speed and memory: ``python -m benchmarks.run`` (or ``make bench``)."""
