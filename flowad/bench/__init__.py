"""Benchmarks: runners and result tables (speed against peer flow libraries)."""

from flowad.bench.speed import SpeedConfig, format_speed_report, run_speed, speed_ratios

__all__ = ["SpeedConfig", "format_speed_report", "run_speed", "speed_ratios"]
