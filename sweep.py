"""Run a sweep file (a whole recipe, see sweeps/) as jobs: on this machine, on Ray or on SLURM.

The file expands into an extraction job per image dataset and a chain job per (grid, dataset); a
chain waits only for its own dataset's extraction. Jobs already done (every run complete and
verified in the run store) are skipped, so running the same command again resumes the sweep.
``--dry-run`` lists every job with its state; ``--print-sbatch`` prints the SLURM scripts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from utils.cli import Parser, add_store, add_verbose, configure_logging
from utils.errors import UsageError, UserError, exits_cleanly, run_script

LAUNCHERS = ("local", "ray", "slurm")


def build_parser() -> argparse.ArgumentParser:
    # the sweep-file and data modules load numpy: inside main, after its signal handlers
    from data.paths import add_root_flags
    from sweeping.spec import FIXED_PRECISIONS, OVERRIDE_DEVICES

    parser = Parser(prog="sweep.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "sweep",
        type=Path,
        metavar="FILE",
        help="the sweep file (TOML): a path, or the name of a shipped one (embedded, paper)",
    )
    parser.add_argument(
        "--only", nargs="+", metavar="GRID", help="run only these grids of the file, e.g. fig2 (default: every grid)"
    )
    parser.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: this process (or a pool of --parallel processes); ray: one Ray task per job; "
        "slurm: job arrays through submitit",
    )
    parser.add_argument("--dry-run", action="store_true", help="list every job with its state, and exit")
    parser.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="jobs at once: local, N processes (default 1: in this process); ray, a local "
        "instance of N × --cpus-per-job CPUs (default every CPU); slurm, the array parallelism",
    )
    parser.add_argument(
        "--cpus-per-job",
        type=int,
        metavar="N",
        help="CPUs each job asks for and its torch threads (default: the file's, else 1)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="train every run for N epochs instead of the file's (other runs: another name; default: the file's)",
    )

    machine = parser.add_argument_group("machine (the sweep file fixes these; override them for another machine)")
    machine.add_argument(
        "--device",
        choices=OVERRIDE_DEVICES,
        help="where features are extracted and heads trained, instead of the file's (auto: CUDA where available; "
        "default: absent, the file's)",
    )
    machine.add_argument(
        "--precision",
        choices=FIXED_PRECISIONS,
        help="extraction arithmetic instead of the file's (other features: other run names; "
        "default: absent, the file's)",
    )

    places = parser.add_argument_group("files")
    add_store(places)
    places.add_argument(
        "--csv-dir",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="folder of the results CSVs, one per noise type (<ctype>.csv)",
    )
    add_root_flags(places)

    ray = parser.add_argument_group("ray")
    ray.add_argument("--address", help="a Ray cluster to connect to (default: RAY_ADDRESS, else a local instance)")

    slurm = parser.add_argument_group("slurm")
    slurm.add_argument("--partition", help="SLURM partition (default: the file's, else the cluster's default)")
    slurm.add_argument(
        "--time", type=int, metavar="MIN", help="time limit per job in minutes (default: the file's, else 60)"
    )
    slurm.add_argument(
        "--gpus-per-job", type=int, metavar="N", help="GPUs per job on CUDA (default: the file's, else 0)"
    )
    slurm.add_argument(
        "--mem", type=int, metavar="GB", help="memory per job in GB (default: the file's, else the cluster's)"
    )
    slurm.add_argument("--log-dir", type=Path, metavar="DIR", help="submitit's logs (default sweep-logs/<sweep name>)")
    slurm.add_argument(
        "--print-sbatch",
        action="store_true",
        help="print the sbatch script of every job array, and exit (submits nothing)",
    )
    slurm.add_argument(
        "--slurm-executor",
        choices=("slurm", "local"),
        default="slurm",
        help="local: submitit's local executor, a process per task on this machine (for testing)",
    )
    add_verbose(parser)
    return parser


def check_args(args: argparse.Namespace) -> None:
    from sweeping.resources import check_resources

    for flag, value, low in (("--parallel", args.parallel, 1), ("--epochs", args.epochs, 1)):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    check_resources(
        {
            "cpus_per_job": args.cpus_per_job,
            "gpus_per_job": args.gpus_per_job,
            "mem_gb": args.mem,
            "time_min": args.time,
            "partition": args.partition,
        }
    )
    if args.address and args.launcher != "ray":
        raise UsageError("--address is a Ray cluster's: add --launcher ray")


def resources_of(args: argparse.Namespace, sweep):
    import dataclasses

    changes = {
        "partition": args.partition,
        "time_min": args.time,
        "gpus_per_job": args.gpus_per_job,
        "mem_gb": args.mem,
    }
    return dataclasses.replace(sweep.resources, **{key: value for key, value in changes.items() if value is not None})


@exits_cleanly
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    check_args(args)
    from sweeping import launch
    from sweeping.files import find_sweep_file
    from sweeping.spec import Places, load_sweep

    args.sweep = find_sweep_file(args.sweep)
    places = Places(
        store=args.checkpoint, csv_dir=args.csv_dir, data_root=args.data_root, feature_root=args.feature_root
    )
    sweep = load_sweep(
        args.sweep,
        places,
        only=args.only,
        epochs=args.epochs,
        cpus_per_job=args.cpus_per_job,
        device=args.device,
        precision=args.precision,
    )
    resources = resources_of(args, sweep)
    log_dir = args.log_dir or Path("sweep-logs") / sweep.name
    if args.print_sbatch:
        from sweeping.launch_slurm import sbatch_text

        launch.require("submitit", "slurm")
        print(sbatch_text(list(sweep.jobs), resources, sweep.device, log_dir, sweep.name, args.parallel))
        return 0
    states = launch.states(sweep)
    if args.dry_run:
        print(launch.dry_run_text(sweep, states, args.checkpoint))
        return 0
    jobs = launch.pending(sweep, states)
    if args.launcher == "slurm" and args.slurm_executor == "slurm" and jobs:
        launch.require_scheduler()
    skipped = len(sweep.jobs) - len(jobs)
    from utils.outputs import planned_outputs

    with planned_outputs() as plan:
        plan.folder(args.checkpoint, "-c/--checkpoint")
        plan.folder(args.csv_dir, "--csv-dir")
    print(f"{sweep.name}: {len(jobs)} job(s) to run on {args.launcher}, {skipped} already done", flush=True)
    tally = launch.Tally(len(jobs))
    try:
        if args.launcher == "local":
            launch.run_local(jobs, args.parallel or 1, tally)
        elif args.launcher == "ray":
            from sweeping.launch_ray import run_ray

            cpus = args.parallel * resources.cpus_per_job if args.parallel else None
            run_ray(jobs, resources, sweep.device, tally, address=args.address, num_cpus=cpus)
        else:
            from sweeping.launch_slurm import run_slurm

            run_slurm(jobs, resources, sweep.device, tally, log_dir, sweep.name, args.parallel, args.slurm_executor)
    finally:
        print(tally.summary(skipped), flush=True)
    if tally.failed:
        raise UserError(
            f"{len(tally.failed)} of {len(jobs)} job(s) failed (their errors are above); run the same "
            f"command again to retry them"
        )
    print(f"runs in {args.checkpoint}/, results in {args.csv_dir}/")
    return 0


if __name__ == "__main__":
    run_script(main)
