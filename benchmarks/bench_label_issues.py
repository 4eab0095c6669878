#!/usr/bin/env python3
"""Finding wrong labels: the PLL student and self-distilled students against cleanlab's find_label_issues.

For each dataset, noise type, rate η and seed, the training labels are corrupted as
``train_linear.py``'s teacher corrupts them (``data.noise``, same seed, same draw). Then each method
flags samples:

- ``pll``: :class:`selfdistill.PLLClassifier` (teacher then PLL student) disagrees with the given label;
- ``students``: :class:`selfdistill.SelfDistillationClassifier` (teacher then 4 students) disagrees;
- ``cleanlab``: ``cleanlab.filter.find_label_issues`` on out-of-sample ``pred_probs`` from
  ``--folds``-fold cross-validated logistic regression (cleanlab's recommended use);
- ``none``: nothing flagged (the retrained model on every label, for reference).

Precision, recall and F1 are those of the flagged set against the truly corrupted samples; "kept
acc" is the test accuracy (%) of a logistic regression retrained on the samples left unflagged
(the same model for every method); "model acc" is the test accuracy of the method's own final
model. Cells: mean ± std (ddof 0) over seeds. Progress goes to stderr, one line per fit.

    python3 -m benchmarks.bench_label_issues
    python3 -m benchmarks.bench_label_issues -d digits --ctype sym --corruption 0.4 --seed 0 --epochs 50
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from typing import Sequence

from data.noise_types import NOISE_TYPES
from training.settings import default_lr_wd
from utils import checks
from utils.cli import Parser, add_bool_flag, add_seeds, add_threads, add_verbose, configure_logging
from utils.errors import UserError, exits_cleanly, run_script
from utils.progress import Steps

DATASETS = ("digits", "synthetic")  # the embedded sets: no download
METHODS = ("pll", "students", "cleanlab", "none")


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    datasets: tuple[str, ...] = DATASETS
    ctypes: tuple[str, ...] = NOISE_TYPES
    rates: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = METHODS
    epochs: int = 200
    rounds: int = 4
    folds: int = 5
    threads: int = 1

    def validate(self) -> "BenchConfig":
        for name in self.datasets:
            checks.choice("-d/--dataset", name, DATASETS)
        for ctype in self.ctypes:
            checks.choice("--ctype", ctype, NOISE_TYPES)
        for eta in self.rates:
            checks.interval("--corruption", eta, 0.0, 1.0)
        for seed in self.seeds:
            checks.seed("--seed", seed)
        for method in self.methods:
            checks.choice("--methods", method, METHODS)
        checks.integer("--epochs", self.epochs, 1)
        checks.integer("--rounds", self.rounds, 0)
        checks.integer("--folds", self.folds, 2)
        checks.integer("--threads", self.threads, 1, 1024)
        return self


def build_parser() -> Parser:
    default = BenchConfig()
    parser = Parser(prog="python3 -m benchmarks.bench_label_issues", description=__doc__.split("\n")[0])
    parser.add_argument("-d", "--dataset", dest="datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--ctype", dest="ctypes", nargs="+", choices=NOISE_TYPES, default=list(NOISE_TYPES))
    parser.add_argument(
        "--corruption", dest="rates", type=float, nargs="+", default=list(default.rates), metavar="ETA", help="η"
    )
    add_seeds(parser, default.seeds)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="label-issue finders")
    parser.add_argument("--epochs", type=int, default=default.epochs, help="epochs of every estimator model")
    parser.add_argument("--rounds", type=int, default=default.rounds, help="students of the students method")
    parser.add_argument("--folds", type=int, default=default.folds, help="cross-validation folds for cleanlab")
    add_threads(parser, default.threads, help="CPU threads of the fits")
    add_bool_flag(parser, "--json", help="print rows as JSON")
    parser.add_argument(
        "--from-json",
        metavar="FILE",
        help="print the table of a saved --json output and exit (default: absent, run the grid)",
    )
    add_verbose(parser)
    return parser


def parse(argv: Sequence[str] | None):
    args = build_parser().parse_args(argv)
    config = BenchConfig(
        tuple(dict.fromkeys(args.datasets)),
        tuple(dict.fromkeys(args.ctypes)),
        tuple(dict.fromkeys(args.rates)),
        tuple(dict.fromkeys(args.seeds)),
        tuple(dict.fromkeys(args.methods)),
        args.epochs,
        args.rounds,
        args.folds,
        args.threads,
    )
    return config.validate(), args


def flag_scores(flagged, corrupted) -> dict[str, float]:
    """Precision, recall and F1 (%) of a flagged mask against the truly corrupted one (0 where undefined)."""
    hits = float((flagged & corrupted).sum())
    precision = hits / flagged.sum() if flagged.any() else 0.0
    recall = hits / corrupted.sum() if corrupted.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1}


def logistic_regression(seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=seed)


def flag(method: str, x, noisy, config: BenchConfig, dataset: str, seed: int):
    """(flagged mask, the method's own final model or None)."""
    import numpy as np

    from selfdistill import PLLClassifier, SelfDistillationClassifier

    lr, wd = default_lr_wd(dataset)
    settings = dict(lr=lr, wd=wd, epochs=config.epochs, random_state=seed)
    estimators = {
        "pll": lambda: PLLClassifier(**settings),
        "students": lambda: SelfDistillationClassifier(rounds=config.rounds, **settings),
    }
    if method in estimators:
        model = estimators[method]().fit(x, noisy)
        return model.label_issues_, model
    if method == "cleanlab":
        from cleanlab.filter import find_label_issues
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        folds = StratifiedKFold(config.folds, shuffle=True, random_state=seed)
        pred_probs = cross_val_predict(logistic_regression(seed), x, noisy, cv=folds, method="predict_proba")
        return find_label_issues(noisy, pred_probs, n_jobs=1), None  # no worker processes: a shared machine
    return np.zeros(len(noisy), dtype=bool), None


def cell_rows(dataset: str, config: BenchConfig, steps: Steps) -> list[dict]:
    """One row per (ctype, η, seed, method) of one dataset."""
    import numpy as np

    from data import load_feature_set
    from data.clusters import NOISE_CUT, class_similarity, cluster_classes
    from data.noise import make_noisy_labels

    features = load_feature_set(dataset)
    x, true, k = features.train_features, features.train_labels, features.num_classes
    clusters = cluster_classes(class_similarity(x, true, k), NOISE_CUT)  # as the chain's cc noise
    rows = []
    for ctype in config.ctypes:
        for eta in config.rates:
            for seed in config.seeds:
                noisy = make_noisy_labels(true, ctype, eta, seed, k, clusters).labels
                corrupted = noisy != true
                for method in config.methods:
                    start = time.perf_counter()
                    flagged, model = flag(method, x, noisy, config, dataset, seed)
                    kept = ~flagged
                    retrained = logistic_regression(seed).fit(x[kept], noisy[kept])
                    row = {
                        "dataset": dataset,
                        "ctype": ctype,
                        "eta": eta,
                        "seed": seed,
                        "method": method,
                        "realized": float(corrupted.mean()),
                        "flagged": int(flagged.sum()),
                        **flag_scores(flagged, corrupted),
                        "kept_acc": 100 * retrained.score(features.test_features, features.test_labels),
                        "model_acc": (
                            100 * float(np.mean(model.predict(features.test_features) == features.test_labels))
                            if model is not None
                            else None
                        ),
                        "wall_s": time.perf_counter() - start,
                    }
                    rows.append(row)
                    steps.done(
                        f"{dataset} {ctype} η={eta:g} seed {seed} {method}: F1 {row['f1']:.1f}, "
                        f"kept acc {row['kept_acc']:.1f} ({row['wall_s']:.1f} s)"
                    )
    return rows


OWN_MODELS = ("pll", "students")  # the finders that are estimators, with a test accuracy of their own
FINDERS = (*OWN_MODELS, "cleanlab")  # the methods that flag samples (``none`` flags nothing)


def _mean_std(values: list[float]) -> str:
    import numpy as np

    return f"{np.mean(values):.1f} ± {np.std(values):.1f}" if values else "—"


def summary_table(rows: list[dict], methods: Sequence[str]) -> str:
    """Markdown, one row per (dataset, noise, η): each finder's F1 (precision / recall) of the flagged
    samples, then each method's kept accuracy and each estimator's own test accuracy; mean ± std over seeds."""
    import numpy as np

    groups: dict[tuple, dict[str, list[dict]]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["ctype"], row["eta"]), {}).setdefault(row["method"], []).append(row)
    finders = [m for m in methods if m in FINDERS]
    own = [m for m in methods if m in OWN_MODELS]
    header = ["dataset", "noise", "η (realised)"]
    header += [f"F1 (P / R) {m}" for m in finders] + [f"kept acc {m}" for m in methods]
    header += [f"model acc {m}" for m in own]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = {name: i for i, name in enumerate((*DATASETS, *NOISE_TYPES))}
    for key in sorted(groups, key=lambda key: (order[key[0]], order[key[1]], key[2])):
        by_method = groups[key]
        realized = np.mean([row["realized"] for rows_ in by_method.values() for row in rows_])
        cells = [key[0], key[1], f"{key[2]:g} ({realized:.2f})"]
        for m in finders:
            found = by_method.get(m, [])
            p, r = (np.mean([row[c] for row in found]) if found else np.nan for c in ("precision", "recall"))
            cells.append(f"{_mean_std([row['f1'] for row in found])} ({p:.0f} / {r:.0f})")
        cells += [_mean_std([row["kept_acc"] for row in by_method.get(m, [])]) for m in methods]
        cells += [_mean_std([row["model_acc"] for row in by_method.get(m, [])]) for m in own]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_saved(path: str) -> dict:
    """A saved ``--json`` output; a one-line UserError if it is not one."""
    problem = f"--from-json {path} is not this benchmark's --json output"
    try:
        with open(path, encoding="utf-8") as stream:
            saved = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{problem} ({type(error).__name__})") from None
    if not (isinstance(saved, dict) and {"rows", "machine", "config"} <= set(saved)):
        raise UserError(f"{problem} (it lacks rows, machine or config)")
    return saved


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    config, args = parse(argv)
    configure_logging(args.verbose)
    if args.from_json:
        saved = read_saved(args.from_json)
        print(f"machine: {saved['machine']}")
        print(summary_table(saved["rows"], saved["config"]["methods"]))
        return 0
    import numpy as np
    import sklearn

    from utils.threads import cpu_threads

    cells = len(config.ctypes) * len(config.rates) * len(config.seeds) * len(config.methods)
    start = time.perf_counter()
    with cpu_threads(config.threads), Steps(len(config.datasets) * cells, "fits") as steps:
        rows = [row for dataset in config.datasets for row in cell_rows(dataset, config, steps)]
    machine = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "threads": config.threads,
        "wall_s": round(time.perf_counter() - start, 1),
        "load_avg": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps({"config": dataclasses.asdict(config), "machine": machine, "rows": rows}, indent=2))
    else:
        print(f"machine: {machine}")
        print(summary_table(rows, config.methods))
    return 0


if __name__ == "__main__":
    run_script(main)
