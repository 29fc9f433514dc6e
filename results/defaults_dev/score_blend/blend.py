"""Score blend study (results/defaults_dev/score_blend/README section in results/defaults_dev/README.md).

Per task of the ODDS protocol (flowad_bench's split, small-track subsample and row cap), fit the
default RobustRealNVP once and write the test ROC AUC of -[(1 - w) log p_flow + w log p_core] for
w in 0, 0.25, 0.5, 0.75, 1, where p_core is the density of the flow's whitening layer alone (the
Gaussian core it starts from) and p_flow the trained flow's. w = 0 is the detector's own score.
Run from the repository root, one process per line (OMP_NUM_THREADS=1):

  python results/defaults_dev/score_blend/blend.py --data ../shared/data/odds --seeds 2 --out odds.jsonl
  python results/defaults_dev/score_blend/blend.py --data ../shared/data/odds --data ../shared/data/adbench_dev --train-rows 200 --max-rows 50000 --seeds 2 --out small.jsonl
  python results/defaults_dev/score_blend/blend.py --data ../shared/data/adbench_dev --max-rows 10000 --seeds 1 --out full10k_adbench.jsonl
  python results/defaults_dev/score_blend/blend.py --data ../shared/data/cifar10_resnet18 --seeds 2 --out cifar.jsonl
"""
import sys, json, argparse
import numpy as np, torch
from flowad_bench.odds import _capped_dataset
from flowad_bench.protocol import stratified_split, subsample_train, evaluate
from flowad_bench.methods import get_method, quiet_and_isolated
from flowad_bench.datasets import dataset_paths
from flowad.flows.flow import standard_normal_log_prob

p = argparse.ArgumentParser()
p.add_argument("--data", action="append"); p.add_argument("--datasets", default=None)
p.add_argument("--seeds", type=int, default=2); p.add_argument("--train-rows", type=int, default=None)
p.add_argument("--max-rows", type=int, default=None); p.add_argument("--out")
a = p.parse_args()
names = a.datasets.split(",") if a.datasets else None
paths = [pp for d in a.data for pp in dataset_paths(d) if names is None or pp.stem in names]
W = [0.0, 0.25, 0.5, 0.75, 1.0]
with open(a.out, "a") as fh:
    for path in paths:
        for seed in range(a.seeds):
            X, y = _capped_dataset(str(path), a.max_rows)
            tr, te = stratified_split(y, seed)
            if a.train_rows is not None:
                tr = subsample_train(y, tr, a.train_rows, seed)
            m = get_method("RobustRealNVP")
            with quiet_and_isolated(seed):
                det = m.build(X.shape[1], seed)
                det.fit(X[tr])
                bench_scores = det.decision_function(X[te])
                with torch.no_grad():
                    Z = det._standardize(X[te])
                    flow_lp = det.flow_.log_prob(Z).double().numpy()
                    wl = det.flow_.bijection.layers[0]
                    yy, ld = wl(Z)
                    core_lp = (standard_normal_log_prob(yy) + ld).double().numpy()
            row = {"dataset": path.stem, "seed": seed, "bench_auc": evaluate(y[te], bench_scores)[0]}
            for w in W:
                s = -((1 - w) * flow_lp + w * core_lp)
                s = np.nan_to_num(s, nan=np.inf, posinf=1e300)
                row[f"w{w}"] = evaluate(y[te], s)[0]
            fh.write(json.dumps(row) + "\n"); fh.flush()
            print(row, flush=True)
