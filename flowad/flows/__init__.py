"""Flows: a standard-normal base distribution pushed through a bijection."""

from flowad.flows.adaflow import build_adaflow, build_batchnorm_flow
from flowad.flows.flow import Flow, standard_normal_log_prob
from flowad.flows.realnvp import build_realnvp

__all__ = ["Flow", "build_adaflow", "build_batchnorm_flow", "build_realnvp", "standard_normal_log_prob"]
