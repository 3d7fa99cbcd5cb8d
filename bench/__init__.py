"""Benchmarks of natsflow: ``python bench/run.py`` (see README.md)."""
