"""Datasets shipped with flowad and synthetic generators shared by tests and benchmarks."""

from flowad.datasets.examples import EXAMPLES, load_example

__all__ = ["EXAMPLES", "load_example"]
