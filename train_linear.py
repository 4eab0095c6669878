"""Linear probing on frozen features with noisy labels: teacher, self-distilled students and the PLL student.

Without ``--dist`` (and without ``--partial``) one process runs the whole chain — the teacher,
``--rounds`` students and the PLL student — for every seed and corruption rate, and prints a
table of test accuracy. ``--dist 0`` trains the teacher only, ``--dist t`` student t from round
t−1's run, ``--partial`` the PLL student from the teacher. Runs live in the run store
(``-c/--checkpoint``); a finished run is reused, ``--force`` trains it again. ``--summary``
prints the data summary (sizes, clusters, noise transition matrices) and exits.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from training.config import TrainConfig
from training.settings import SETTINGS, add_train_arguments, values_from_args
from utils import checks
from utils.cli import Parser, add_bool_flag, add_seeds, add_store, add_threads, add_verbose, configure_logging
from utils.errors import UsageError, exits_cleanly, run_script
from utils.progress import interactive, line
from utils.stages import BASELINES, Stage

DEFAULT_SEEDS = [0, 1, 2]
DEFAULT_RATES = [0.3, 0.5, 0.7]
# The data flags (data.arguments) that a suggested command repeats when they differ from their defaults.
DATA_FLAGS = (
    "data_root",
    "feature_root",
    "download",
    "device",
    "gpu_id",
    "arch",
    "depth",
    "weights",
    "transform",
    "precision",
    "extract_batch",
    "workers",
)


def build_parser() -> argparse.ArgumentParser:
    from data.arguments import add_data_arguments

    parser = Parser(prog="train_linear.py", description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, many_datasets=True)

    noise = parser.add_argument_group("label noise")
    stage = parser.add_argument_group("stage")
    optim = parser.add_argument_group("optimisation")
    # Every run setting of the table (training.settings), each in its help group.
    add_train_arguments(parser, {"label noise": noise, "stage": stage, "optimisation": optim})
    corruption = SETTINGS["corruption"]
    noise.add_argument(
        corruption.flag,
        type=float,
        nargs="+",
        default=DEFAULT_RATES,
        metavar=corruption.metavar,
        help=f"{corruption.help}(s) in [0, 1]",
    )
    add_seeds(noise, DEFAULT_SEEDS)
    stage.add_argument(
        "--dist",
        type=int,
        metavar="T",
        help="train round T only (0: teacher, T ≥ 1: student T; default: absent, the whole chain)",
    )
    add_bool_flag(stage, "--partial", help="train the PLL student from the teacher (bare, or True/False)")
    stage.add_argument("--rounds", type=int, default=4, metavar="R", help="students after the teacher in the chain")
    stage.add_argument(
        "--baselines",
        nargs="+",
        choices=(*BASELINES, "all"),
        default=[],
        metavar="NAME",
        help=f"also train these label-noise baselines in the chain ({', '.join(BASELINES)}, or all)",
    )
    add_threads(optim, help="CPU threads for training (0: one for small problems, else every available CPU)")

    out = parser.add_argument_group("outputs")
    add_store(out)
    out.add_argument(
        "--csv", type=Path, metavar="FILE", help="results CSV the runs are exported to (default ./results/<ctype>.csv)"
    )
    out.add_argument(
        "--rebuild-csv",
        "--rebuild-results",
        dest="rebuild_csv",
        action="store_true",
        help="rewrite the results CSV from the run store and exit",
    )
    out.add_argument(
        "--resume",
        action="store_true",
        help="reuse finished runs and redo damaged or interrupted ones (what every command does; kept for scripts)",
    )
    out.add_argument("--force", action="store_true", help="train the requested runs again even if finished")
    out.add_argument(
        "--dry-run", action="store_true", help="list the runs this command needs with their state, and exit"
    )
    out.add_argument("--summary", action="store_true", help="print the data summary and exit")
    add_verbose(out)
    return parser


# -- settings ------------------------------------------------------------------------------------------


def check_args(args: argparse.Namespace) -> None:
    """Every setting that can be checked before loading data: one UsageError naming the flag."""
    if args.dist is not None:
        checks.integer("--dist", args.dist, 0)
    if args.dist is not None and args.partial:
        raise UsageError("give either --dist T or --partial, not both")
    if args.baselines and (args.dist is not None or args.partial):
        raise UsageError("--baselines trains beside the whole chain: drop --dist/--partial")
    for name in baseline_names(args):
        template(args, "", stage=Stage(name)).validate()
    checks.integer("--rounds", args.rounds, 0)
    checks.integer("--threads", args.threads, 0, 4096)
    for flag, values in (("--seed", args.seeds), ("--corruption", args.corruption)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise UsageError(f"{flag} names {', '.join(f'{v:g}' for v in repeated)} twice; give each value once")
    for eta in args.corruption:
        template(args, "", eta=eta).validate()
    if args.features is not None and len(args.dataset) > 1:
        raise UsageError("give either -d/--dataset or --features, not both")
    from data.arguments import check_data_arguments

    check_data_arguments(args, args.dataset)


def template(
    args: argparse.Namespace, dataset: str, eta: float | None = None, stage: Stage | None = None
) -> TrainConfig:
    """The config every run of this command shares (first seed and rate unless given); the features' identity
    (source, backbone, weights) is filled in by :class:`training.jobs.ChainJob`."""
    values = values_from_args(args, dataset if args.features is None else "")
    values.update(corruption=args.corruption[0] if eta is None else eta, seed=args.seeds[0])
    return TrainConfig.build(
        values, dataset=dataset, feature_source="", backbone="", weights="", stage=stage or Stage.teacher()
    )


def baseline_names(args: argparse.Namespace) -> list[str]:
    return list(BASELINES) if "all" in args.baselines else list(dict.fromkeys(args.baselines))


def requested_stages(args: argparse.Namespace) -> list[Stage] | None:
    """The one stage asked for with --dist/--partial, or None for the whole chain."""
    if args.partial:
        return [Stage.pll()]
    if args.dist is not None:
        return [Stage.from_round(args.dist)]
    return None


def csv_path(args: argparse.Namespace, ctype: str) -> Path:
    return args.csv if args.csv is not None else Path("results") / f"{ctype}.csv"


def suggested_command(
    parser: argparse.ArgumentParser, args: argparse.Namespace, dataset: str | None, stage: Stage | None
) -> str:
    """The command that trains ``stage`` (None: the whole chain) with this command's settings."""
    from training.commands import chain_command

    data = ["--features", str(args.features)] if args.features is not None else ["-d", dataset or args.dataset[0]]
    for dest in DATA_FLAGS:
        value = getattr(args, dest)
        if value is not None and value != parser.get_default(dest):
            data += [f"--{dest.replace('_', '-')}", str(value)]
    extra = [] if args.threads == parser.get_default("threads") else ["--threads", str(args.threads)]
    if args.csv is not None:
        extra += ["--csv", str(args.csv)]
    config = template(args, dataset or "")
    return chain_command(config, data, args.checkpoint, stage, args.corruption, args.seeds, extra)


# -- data -------------------------------------------------------------------------------------------------


def dataset_names(args: argparse.Namespace) -> list[str]:
    return [str(args.features)] if args.features is not None else list(dict.fromkeys(args.dataset))


def load_features(args: argparse.Namespace, name: str):
    from data import load_feature_file, load_feature_set
    from data.arguments import data_options

    if args.features is not None:
        return load_feature_file(args.features)
    return load_feature_set(name, data_options(args))


def noise_clusters(features):
    from data.clusters import NOISE_CUT, class_similarity, cluster_classes

    similarity = class_similarity(features.train_features, features.train_labels, features.num_classes)
    return cluster_classes(similarity, NOISE_CUT)


def summary(args: argparse.Namespace, features) -> str:
    from data.clusters import NOISE_CUT
    from data.noise import make_noisy_labels
    from data.summary import describe_clusters, describe_features, describe_noise

    clusters = noise_clusters(features)
    parts = [describe_features(features), describe_clusters(clusters, features.class_names, NOISE_CUT)]
    for seed in args.seeds:
        for eta in args.corruption:
            noisy = make_noisy_labels(features.train_labels, args.ctype, eta, seed, features.num_classes, clusters)
            parts.append(describe_noise(args.ctype, eta, seed, noisy))
    return "\n\n".join(parts)


# -- commands ------------------------------------------------------------------------------------------------


def dry_run(args: argparse.Namespace, name: str) -> str:
    from training.store import State

    plan = chain_job(args, name).plan()
    dataset = plan[0][0].dataset
    words = {
        State.COMPLETE: "done",
        State.OLD_FORMAT: "done (old format)",
        State.DAMAGED: "damaged",
        State.IN_PROGRESS: "in progress",
        State.MISSING: "to run",
    }
    lines = [
        f"{words[lookup.state]:<17} {lookup.name}" + (f"  ({lookup.problem})" if lookup.problem else "")
        for _, lookup in plan
    ]
    done = sum(lookup.state.finished for _, lookup in plan)
    lines.append(f"{dataset}: {done} of {len(plan)} runs done, {len(plan) - done} to run, in {args.checkpoint}/")
    return "\n".join(lines)


def chain_job(args: argparse.Namespace, name: str):
    """The :class:`training.jobs.ChainJob` this command runs for one dataset (or features file)."""
    from data.arguments import data_options
    from training.chain import chain_stages
    from training.jobs import ChainJob

    stages = requested_stages(args)
    dataset = name if args.features is None else ""
    return ChainJob(
        dataset=dataset,
        options=data_options(args),
        settings=template(args, dataset),
        seeds=tuple(args.seeds),
        rates=tuple(args.corruption),
        stages=tuple(chain_stages(args.rounds, baselines=baseline_names(args))),
        store=args.checkpoint,
        csv=csv_path(args, args.ctype),
        threads=args.threads,
        force=args.force,
        only=stages[0] if stages else None,
        features=args.features,
    )


def train(parser, args: argparse.Namespace, name: str) -> str:
    """Train (or reuse) the requested stage(s) of one dataset; returns the text to print."""

    def progress(description: str):
        from tqdm import tqdm

        return lambda epochs: tqdm(epochs, desc=description, unit="epoch", leave=False, disable=not interactive())

    def announce(message: str) -> None:
        if not interactive():
            line(message)  # with the dataset's name (utils.progress.labelled)

    dataset = name if args.features is None else None
    text, _ = chain_job(args, name).train(
        command_for=lambda stage: suggested_command(parser, args, dataset, stage), progress=progress, announce=announce
    )
    return text


def probe_outputs(plan, args: argparse.Namespace) -> None:
    from training import results

    plan.folder(args.checkpoint, "-c/--checkpoint")
    for ctype in {args.ctype}:
        path = plan.file(csv_path(args, ctype), "--csv")
        results.check_writable(path)


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    check_args(args)
    from utils.outputs import planned_outputs

    if args.rebuild_csv:
        from training import results
        from training.store import RunStore

        with planned_outputs() as plan:
            probe_outputs(plan, args)
            path = csv_path(args, args.ctype)
            count = results.rebuild(path, RunStore(args.checkpoint), ctype=args.ctype)
        print(f"wrote {count} rows to {path}")
        return 0
    if args.dry_run or args.summary:
        for name in dataset_names(args):
            print(dry_run(args, name) if args.dry_run else summary(args, load_features(args, name)))
        return 0
    with planned_outputs() as plan:
        probe_outputs(plan, args)
        for name in dataset_names(args):
            print(train(parser, args, name), flush=True)
    print(f"runs in {args.checkpoint}/, results in {csv_path(args, args.ctype)}")
    return 0


if __name__ == "__main__":
    run_script(main)
