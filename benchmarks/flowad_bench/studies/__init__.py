"""Reproductions of the published studies (experiments built on the detectors)."""

from flowad_bench.studies.two_moons import TwoMoonsConfig, run_two_moons, summarize, to_markdown

__all__ = ["TwoMoonsConfig", "run_two_moons", "summarize", "to_markdown"]
