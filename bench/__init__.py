"""Benchmarks: `make bench` (python -m bench) prints the figures and the machine."""
