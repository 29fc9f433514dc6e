"""Mean ROC AUC per weight w of the score blend, from the .jsonl files beside this script.

python results/defaults_dev/score_blend/summary.py   (repository root)
"""

import collections
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
for name in ("odds", "small", "full10k_adbench", "cifar"):
    rows = [json.loads(line) for line in (HERE / f"{name}.jsonl").open()]
    keys = [k for k in rows[0] if k.startswith("w")]
    by = collections.defaultdict(list)
    for r in rows:
        by[r["dataset"]].append(r)
    sets = {"all": list(by)}
    if name in ("odds", "small"):
        sets["study's 15 ODDS"] = [d for d in by if d != "arrhythmia" and (name == "odds" or "_" not in d)]
    for label, names in sets.items():
        means = [np.mean([np.mean([r[k] for r in by[d]]) for d in names]) for k in keys]
        print(f"{name:16s} {label:16s} ({len(names):2d} sets) " + "  ".join(f"{k}={m:.4f}" for k, m in zip(keys, means)))
