"""Flows: a standard-normal base distribution pushed through a bijection."""

from flowad.flows.flow import Flow, standard_normal_log_prob
from flowad.flows.realnvp import build_realnvp

__all__ = ["Flow", "build_realnvp", "standard_normal_log_prob"]
