"""Linear probing on frozen features with noisy labels: teacher, self-distilled students and the PLL student.

Without ``--dist`` (and without ``--partial``) one process runs the whole chain — the teacher,
``--rounds`` students and the PLL student — for every seed and corruption rate, and prints a
table of test accuracy. ``--dist 0`` trains the teacher only, ``--dist t`` student t from round
t−1's checkpoint, ``--partial`` the PLL student from the teacher. ``--summary`` prints the data
summary (sizes, clusters, noise transition matrices) and exits.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from data import FeatureSet, load_feature_file, load_feature_set
from data.arguments import add_data_arguments, data_options
from data.registry import feature_source
from data.clusters import NOISE_CUT, class_similarity, cluster_classes
from data.noise import NOISE_TYPES, check_rate, make_noisy_labels
from data.summary import describe_clusters, describe_features, describe_noise
from training import results
from training.chain import chain_plan, chain_table, configs_for, run_chain
from training.config import PLL, TrainConfig, default_lr_wd
from training.stages import DeviceData, StageOutputs, finished_run, run_stage
from utils.cli import Parser, add_bool_flag
from utils.device import resolve_device, set_cpu_threads
from utils.errors import UsageError, exits_cleanly

DEFAULT_SEEDS = [0, 1, 2]
DEFAULT_RATES = [0.3, 0.5, 0.7]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="train_linear.py", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, many_datasets=True)

    noise = parser.add_argument_group("label noise")
    noise.add_argument("--ctype", choices=NOISE_TYPES, default="cc", help="noise type (default cc: superclass)")
    noise.add_argument("--corruption", type=float, nargs="+", default=DEFAULT_RATES, metavar="ETA",
                       help="corruption rate(s) η in [0, 1] (default 0.3 0.5 0.7)")
    noise.add_argument("--manualSeed", "--seeds", dest="seeds", type=int, nargs="+", default=DEFAULT_SEEDS,
                       metavar="SEED", help="seed(s) (default 0 1 2)")

    stage = parser.add_argument_group("stage")
    stage.add_argument("--dist", type=int, metavar="T",
                       help="train round T only (0: teacher, T ≥ 1: student T); absent: the whole chain")
    add_bool_flag(stage, "--partial", help="train the PLL student from the teacher (bare, or True/False)")
    stage.add_argument("--rounds", type=int, default=4, help="students in the whole chain (default 4)")
    stage.add_argument("--last", type=int, choices=(0, 1), default=0,
                       help="teacher checkpoint a student learns from: 0 best, 1 last (default 0)")
    stage.add_argument("--pll-k", type=int, default=2, help="PLL candidate set: the teacher's top-k classes (default 2)")
    stage.add_argument("--q", type=float, default=0.7, help="generalised cross-entropy exponent of PLL (default 0.7)")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--lr", "--learning-rate", type=float, help="learning rate (default: per dataset, see README)")
    optim.add_argument("--wd", "--weight-decay", type=float, help="weight decay λ (default: per dataset, see README)")
    optim.add_argument("--epochs", type=int, default=200, help="epochs (default 200)")
    optim.add_argument("--train-batch", type=int, default=128, help="training batch size (default 128)")
    optim.add_argument("--test-batch", type=int, default=200, help="evaluation batch size (default 200)")
    optim.add_argument("--gamma", type=float, default=0.98, help="lr × gamma after every epoch (default 0.98)")
    optim.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    optim.add_argument("--threads", type=int, default=0,
                       help="CPU threads for training (default 0: one thread for small problems, else torch's default)")
    optim.add_argument("--optimizer", choices=("sgd", "lbfgs"), default="sgd",
                       help="sgd, or lbfgs: an exact full-batch solve in float64 on the CPU")
    optim.add_argument("--select", choices=("test", "val"), default="test",
                       help="pick the best epoch on test (reference) or on a validation split of the noisy train set")
    optim.add_argument("--val-fraction", type=float, default=0.1, help="validation fraction with --select val (default 0.1)")

    out = parser.add_argument_group("outputs")
    out.add_argument("-c", "--checkpoint", type=Path, default=Path("checkpoints"),
                     help="folder for run folders (default ./checkpoints)")
    out.add_argument("--results", type=Path, help="results CSV (default ./results/<ctype>.csv)")
    out.add_argument("--rebuild-results", action="store_true",
                     help="rewrite the results CSV from the run folders under --checkpoint and exit")
    out.add_argument("--resume", action="store_true",
                     help="skip runs that already finished (complete folder; a missing CSV row is re-added)")
    out.add_argument("--dry-run", action="store_true",
                     help="list the runs this command would train and those already finished, and exit")
    out.add_argument("--summary", action="store_true", help="print the data summary and exit")
    out.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return parser


def check_args(args: argparse.Namespace) -> None:
    for eta in args.corruption:
        check_rate(eta)
    if args.dist is not None and args.dist < 0:
        raise UsageError(f"--dist must be 0 (teacher) or a round t ≥ 1, got {args.dist}")
    if args.dist is not None and args.partial:
        raise UsageError("give either --dist T or --partial, not both")
    positive = {"--epochs": args.epochs, "--train-batch": args.train_batch, "--test-batch": args.test_batch,
                "--pll-k": args.pll_k}
    for flag, value in positive.items():
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if args.threads < 0:
        raise UsageError(f"--threads must be 0 (automatic) or more, got {args.threads}")
    if args.rounds < 0:
        raise UsageError(f"--rounds must be at least 0, got {args.rounds}")
    if not 0 < args.q <= 1:
        raise UsageError(f"--q must lie in (0, 1], got {args.q}")
    if not 0 < args.val_fraction < 1:
        raise UsageError(f"--val-fraction must lie in (0, 1), got {args.val_fraction}")
    for flag, value in (("--lr", args.lr), ("--wd", args.wd)):
        if value is not None and value < 0:
            raise UsageError(f"{flag} must be non-negative, got {value}")
    if args.lr == 0:
        raise UsageError("--lr must be positive")
    if args.optimizer == "lbfgs" and args.wd == 0:
        raise UsageError("--optimizer lbfgs needs --wd > 0: without the ridge the problem may have no minimiser")


def dataset_names(args: argparse.Namespace) -> list[str]:
    return [str(args.features)] if args.features is not None else list(dict.fromkeys(args.dataset))


def load_features(args: argparse.Namespace, name: str) -> FeatureSet:
    if args.features is not None:
        return load_feature_file(args.features)
    return load_feature_set(name, data_options(args))


def describe_source(args: argparse.Namespace, name: str) -> tuple[str, str]:
    """(dataset name, feature source) without extracting features, for --dry-run."""
    if args.features is not None:
        features = load_feature_file(args.features)
        return features.name, features.source
    return name, feature_source(name, data_options(args))


def noise_clusters(features: FeatureSet):
    similarity = class_similarity(features.train_features, features.train_labels, features.num_classes)
    return cluster_classes(similarity, NOISE_CUT)


def summary(args: argparse.Namespace, features: FeatureSet) -> str:
    clusters = noise_clusters(features)
    parts = [describe_features(features), describe_clusters(clusters, features.class_names, NOISE_CUT)]
    for seed in args.seeds:
        for eta in args.corruption:
            noisy = make_noisy_labels(features.train_labels, args.ctype, eta, seed, features.num_classes, clusters)
            parts.append(describe_noise(args.ctype, eta, seed, noisy))
    return "\n\n".join(parts)


def base_config(args: argparse.Namespace, name: str, source: str) -> TrainConfig:
    lr, wd = default_lr_wd(name if args.features is None else "")
    return TrainConfig(
        dataset=name, feature_source=source, depth=args.depth, weights=args.weights,
        ctype=args.ctype, corruption=args.corruption[0], seed=args.seeds[0], stage=0,
        lr=args.lr if args.lr is not None else lr, wd=args.wd if args.wd is not None else wd,
        epochs=args.epochs, train_batch=args.train_batch, test_batch=args.test_batch, gamma=args.gamma,
        momentum=args.momentum, optimizer=args.optimizer, last=args.last, select=args.select,
        val_fraction=args.val_fraction, q=args.q, pll_k=args.pll_k,
    )


def command_for(argv: Sequence[str]):
    """A function stage → the command line that trains that stage with the same flags as this one."""
    kept, skip = [], False
    for i, token in enumerate(argv):
        if skip:
            skip = False
            continue
        if token in ("--dist", "--rounds"):
            skip = True
            continue
        if token.startswith(("--dist=", "--rounds=", "--partial=")) or token in ("--dry-run", "--summary", "--resume"):
            continue
        if token == "--partial":
            following = argv[i + 1] if i + 1 < len(argv) else ""
            skip = following.lower() in {"true", "false", "1", "0", "yes", "no"}
            continue
        kept.append(token)

    def command(stage: int | str) -> str:
        flag = ["--partial"] if stage == PLL else ["--dist", str(stage)]
        return " ".join(["python3 train_linear.py", *kept, *flag])

    return command


def results_file(args: argparse.Namespace, ctype: str) -> Path:
    return args.results if args.results is not None else Path("results") / f"{ctype}.csv"


def stage_outputs(args: argparse.Namespace, argv: Sequence[str]) -> StageOutputs:
    def results_path(config: TrainConfig) -> Path:
        return results_file(args, config.ctype)

    def progress(description: str):
        return lambda epochs: tqdm(epochs, desc=description, unit="epoch", leave=False, disable=not sys.stderr.isatty())

    return StageOutputs(args.checkpoint, results_path, command_for(argv), progress)


def run_report(finished: list[dict]) -> str:
    lines = []
    for run in finished:
        m, c = run["metrics"], run["config"]
        lines.append(f"{run['stage']:>9}  η={c['corruption']:g} seed {c['seed']}: test {m['test_acc']:.2f}% "
                     f"(epoch {m['best_epoch']}), final {m['final_acc']:.2f}%, train {m['train_acc']:.2f}%  → {run['run']}")
    return "\n".join(lines)


def dry_run(args: argparse.Namespace, outputs: StageOutputs, name: str) -> str:
    dataset, source = describe_source(args, name)
    base = base_config(args, dataset, source)
    if args.dist is None and not args.partial:
        plan = chain_plan(base, args.seeds, args.corruption, args.rounds, outputs)
    else:
        stage = PLL if args.partial else args.dist
        plan = [(c, finished_run(c, outputs, repair=False) is not None)
                for c in configs_for(base, stage, args.seeds, args.corruption)]
    lines = [f"{'done' if done else 'to run':<7} {config.run_name()}" for config, done in plan]
    finished = sum(done for _, done in plan)
    lines.append(f"{dataset}: {finished} finished, {len(plan) - finished} to run, under {args.checkpoint}/")
    return "\n".join(lines)


def train(args: argparse.Namespace, outputs: StageOutputs, name: str) -> str:
    """Train the requested stage(s) of one dataset; returns the text to print."""
    features = load_features(args, name)
    device = resolve_device(args.device, args.gpu_id)
    if device.type == "cpu":
        heads = len(args.seeds) * len(args.corruption)
        set_cpu_threads(args.threads, args.train_batch * features.dim * features.num_classes * heads)
    clusters = noise_clusters(features) if args.ctype == "cc" else None
    data = DeviceData.load(features, device, clusters)
    base = base_config(args, features.name, features.source)
    if args.dist is None and not args.partial:
        finished = run_chain(base, args.seeds, args.corruption, args.rounds, data, outputs, args.resume)
        header = (f"{features.name}: {args.ctype} noise, seeds {' '.join(map(str, args.seeds))}, lr {base.lr:g}, "
                  f"wd {base.wd:g}, {base.optimizer}, test accuracy (%) selected by {base.select}, "
                  f"mean ± std over seeds")
        return f"{header}\n{chain_table(finished)}"
    stage = PLL if args.partial else args.dist
    return run_report(run_stage(configs_for(base, stage, args.seeds, args.corruption), data, outputs, args.resume))


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    check_args(args)
    outputs = stage_outputs(args, argv)
    if args.rebuild_results:
        path = results_file(args, args.ctype)
        count = results.rebuild(path, args.checkpoint, ctype=args.ctype)
        print(f"wrote {count} rows to {path}")
        return 0
    for name in dataset_names(args):
        if args.dry_run:
            print(dry_run(args, outputs, name))
        elif args.summary:
            print(summary(args, load_features(args, name)))
        else:
            print(train(args, outputs, name))
    if not (args.dry_run or args.summary):
        print(f"runs in {args.checkpoint}/, results in {results_file(args, args.ctype)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
