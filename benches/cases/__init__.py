"""Benchmark cases, one module per family of operations.

Each module exposes ``cases(volume) -> list[Case]``; ``benches/run.py`` collects them.
"""
