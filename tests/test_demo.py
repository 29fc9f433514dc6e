"""flowad.demo: both parts end to end on tiny settings, finite AUCs, forward-only adaptation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flowad import AdaFlow, load
from flowad.demo import DemoConfig, adapt_timed, run_demo, verdict
from flowad.exceptions import InputError
from flowad.viz import asinh_ticks


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, DemoConfig.quick(), command="flowad demo --quick-test")


def test_demo_writes_tables_pictures_and_models(quick_run) -> None:
    out, result = quick_run
    names = {p.name for p in result.files}
    assert {"results.md", "contamination_two_moons.png", "contamination_thyroid.png", "shift_two_moons.png",
            "shift_thyroid.png"} <= names
    assert {"robust_realnvp_two_moons.flowad", "robust_realnvp_thyroid.flowad", "adaflow_two_moons.flowad",
            "adaflow_thyroid.flowad"} <= names
    for p in result.files:
        assert p.exists() and p.stat().st_size > 1000, p
    text = (out / "results.md").read_text()
    assert text.splitlines()[2] == "Command: `flowad demo --quick-test`"
    assert "## 1. Contaminated training" in text and "## 2. Domain shift" in text


def test_demo_tables_hold_finite_aucs(quick_run) -> None:
    out, result = quick_run
    rows = [r for part in (*result.contamination, *result.shift) for r in part.rows]
    assert len(rows) == 2 * 4 + 2 * 4
    assert all(0.0 <= auc <= 1.0 and math.isfinite(ap) for _, auc, ap, _ in rows)
    text = (out / "results.md").read_text()
    table_aucs = [float(line.split("|")[2]) for line in text.splitlines() if line.startswith("| ") and "ROC AUC" not in line
                  and not line.startswith("| rows") and not line.split("|")[1].strip().isdigit()]
    assert len(table_aucs) == len(rows)
    assert all(0.0 <= a <= 1.0 for a in table_aucs)
    for s in result.shift:
        assert all(0.0 <= v <= 1.0 for aucs in s.by_size.values() for v in aucs.values())
        assert 0.0 < s.adapt_seconds < 1.0
    assert len(result.summary()) == 4 and all(" wins" in line or " tie " in line for line in result.summary())


def test_demo_model_files_load_and_score(quick_run) -> None:
    out, result = quick_run
    ada = load(out / "adaflow_two_moons.flowad")
    assert "new-site" in ada.domains_
    shift = result.shift[0]
    np.testing.assert_allclose(ada.decision_function(shift.X_test[:5], domain="new-site"),
                               shift.model.decision_function(shift.X_test[:5], domain="new-site"), rtol=1e-5, atol=1e-5)
    robust = load(out / "robust_realnvp_two_moons.flowad")
    assert robust.decision_function(result.contamination[0].X_test[:3]).shape == (3,)


def test_demo_adapt_is_forward_only() -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (120, 3)), rng.normal(2, 0.5, (120, 3))])
    det = AdaFlow(n_couplings=2, epochs=2, random_state=0).fit(X, domains=["a"] * 120 + ["b"] * 120)
    det.flow_.zero_grad(set_to_none=True)  # training leaves its last gradients; adapt must compute none
    before = {k: v.clone() for k, v in det.flow_.state_dict().items()}
    seconds = adapt_timed(det, rng.normal(-1, 2, (60, 3)), "new-site")
    after = det.flow_.state_dict()
    assert 0.0 < seconds < 1.0
    assert set(after) == set(before)
    statistics = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert statistics
    for k, v in before.items():
        if k in statistics:  # the known domains' rows untouched, one row added for the new site
            assert after[k].shape[0] == v.shape[0] + 1
            assert torch.equal(after[k][: v.shape[0]], v), k
        else:
            assert torch.equal(after[k], v), k
    assert all(p.grad is None for p in det.flow_.parameters())


def test_demo_config_rejects_bad_settings() -> None:
    with pytest.raises(InputError, match="n_adapt"):
        DemoConfig(n_adapt=1)
    with pytest.raises(InputError, match="shift_datasets"):
        DemoConfig(shift_datasets=("mnist",))


def test_verdict_calls_close_results_a_tie() -> None:
    assert verdict([("A", 0.90, 0.5, 1.0), ("B", 0.95, 0.5, 1.0)]) == "B wins"
    assert verdict([("A", 0.951, 0.5, 1.0), ("B", 0.955, 0.5, 1.0), ("C", 0.5, 0.5, 1.0)]).startswith("B and A tie")


def test_asinh_ticks_are_spread_and_inside() -> None:
    for lo, hi, c, w in [(-13.3, 4e5, 2.0, 1.5), (-19.7, 600.0, -8.0, 3.0), (0.0, 1.0, 0.5, 0.2)]:
        ticks = asinh_ticks(lo, hi, c, w)
        assert 2 <= len(ticks) <= 6
        u = np.arcsinh((np.array(ticks) - c) / w)
        assert np.all(np.diff(u) > (u[-1] - u[0]) / 20)
        assert all(lo - 1e-9 <= t <= hi + 1e-9 for t in ticks)


def test_missing_matplotlib_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from flowad.demo import MissingExtraError

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(MissingExtraError, match=r'pip install "flowad\[plots\]"'):
        run_demo(tmp_path, DemoConfig.quick())
