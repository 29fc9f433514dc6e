"""Hypothesis profiles of the fuzz suite: ``ci`` (default, for ``make test``) and ``dev`` (more cases).

Select another with ``--hypothesis-profile dev``; the long profile is ``flowad bench fuzz``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

# derandomize: the same cases on every run (every stochastic path seeded); no example database
# files are written into the checkout; no shrinking in ci (a finding prints its case as drawn).
settings.register_profile(
    "ci",
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=300, derandomize=False, phases=list(Phase))
settings.load_profile("ci")
