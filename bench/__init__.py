"""Benchmarks: one command (`make bench` / `python -m bench`), ratios against a baseline measured in the same run."""
