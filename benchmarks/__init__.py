"""Benchmarks: one script per row of BENCHMARKS.md; run ``python -m benchmarks.NAME``."""
