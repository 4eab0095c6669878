"""The units of work of a sweep, as library calls: extract one dataset's features, train one chain.

A job is a frozen, picklable description. ``run()`` does the work in the calling process, with the
torch and BLAS thread counts scoped to the job's CPUs, and returns what it did; :func:`run_job`
is what a worker (a process of a pool, a Ray task, a SLURM array task) calls: it never raises for
a failure of the work, it returns a :class:`JobResult` whose ``error`` is the one-line message.
``state()`` reads the run store (or the feature cache) without training or extracting anything.

``train_linear.py`` trains through :class:`ChainJob` too, so a chain run by a sweep is the chain
the CLI runs with the same settings. Standard library at import: dry runs need no torch.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
import traceback
from pathlib import Path
from typing import Callable

from data.registry import DataOptions
from training.config import TrainConfig
from utils.progress import labelled
from utils.stages import Stage

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class JobResult:
    """What a job did, small enough to send back from any worker."""

    job: str
    ok: bool
    wall_s: float
    pid: int
    host: str
    trained: int = 0
    reused: int = 0
    error: str = ""  # one line, when not ok


@dataclasses.dataclass(frozen=True)
class JobState:
    """What the run store (or feature cache) holds of a job: done, damaged or missing, with k of n runs done."""

    word: str
    done: int
    total: int
    problem: str = ""

    @property
    def finished(self) -> bool:
        return self.word == "done"

    def describe(self) -> str:
        if self.problem:
            return f"{self.word} ({self.problem})"
        if self.word == "done" or self.total == 0:
            return self.word
        return f"{self.word}, {self.done} of {self.total} done"


@dataclasses.dataclass(frozen=True)
class ExtractJob:
    """Extract (and cache) the frozen-backbone features of one image dataset."""

    dataset: str
    options: DataOptions
    threads: int = 1

    def state(self) -> JobState:
        from data.registry import features_cached

        return JobState("done" if features_cached(self.dataset, self.options) else "missing", 0, 0)

    def run(self) -> JobResult:
        import torch  # noqa: F401  (loaded first, so that the thread scope below covers it)

        from data.registry import load_feature_set
        from utils.threads import cpu_threads

        start = time.perf_counter()
        with cpu_threads(self.threads):
            load_feature_set(self.dataset, self.options)
        return _result(f"extract {self.dataset}", start)


@dataclasses.dataclass(frozen=True)
class ChainJob:
    """The stages of one dataset (or features file) for every seed and rate, through the run store.

    ``settings`` holds every setting of the runs (lr, wd, ctype, epochs …); its dataset, feature
    source, backbone and weights are filled from the features. ``only``: train that one stage
    (train_linear's ``--dist``/``--partial``) instead of ``stages`` in order. ``threads``: CPU
    threads (0: one for small problems, else every available CPU).
    """

    dataset: str
    options: DataOptions
    settings: TrainConfig
    seeds: tuple[int, ...]
    rates: tuple[float, ...]
    stages: tuple[Stage, ...]
    store: Path
    csv: Path
    threads: int = 1
    force: bool = False
    only: Stage | None = None
    features: Path | None = None  # a precomputed features file instead of a registry dataset

    # -- without training -----------------------------------------------------------------------------
    def base(self) -> TrainConfig:
        """The first run's config, with the identity of the features it trains on (nothing is extracted)."""
        if self.features is not None:
            from data import load_feature_file

            found = load_feature_file(self.features)
            return self._with_identity(found.name, found.source, found.backbone, found.weights)
        from data.registry import feature_identity

        found = feature_identity(self.dataset, self.options)
        return self._with_identity(self.dataset, found.source, found.backbone, found.weights)

    def _with_identity(self, dataset: str, source: str, backbone: str, weights: str) -> TrainConfig:
        return dataclasses.replace(
            self.settings, dataset=dataset, feature_source=source, backbone=backbone, weights=weights
        )

    def plan(self):
        """Every run of the job with what the store holds for it: [(config, Lookup)]."""
        from training.chain import chain_plan
        from training.store import RunStore

        stages = [self.only] if self.only is not None else list(self.stages)
        return chain_plan(self.base(), list(self.seeds), list(self.rates), stages, RunStore(self.store))

    def state(self) -> JobState:
        from training.store import State

        plan = self.plan()
        done = sum(lookup.state.finished for _, lookup in plan)
        if done == len(plan):
            return JobState("done", done, len(plan))
        damaged = any(lookup.state is State.DAMAGED for _, lookup in plan)
        return JobState("damaged" if damaged else "missing", done, len(plan))

    # -- training -----------------------------------------------------------------------------------------
    def run(self) -> JobResult:
        import torch  # noqa: F401  (loaded first, so that the thread scope below covers it)

        from utils.threads import cpu_threads

        start = time.perf_counter()
        if self.threads > 0:
            with cpu_threads(self.threads):
                runs = self.train()[1]
        else:
            runs = self.train()[1]
        reused = sum(run.reused for run in runs)
        return _result(self.describe(), start, trained=len(runs) - reused, reused=reused)

    def describe(self) -> str:
        s = self.settings
        return f"chain {self.dataset or self.features} {s.ctype} lr {s.lr:g} wd {s.wd:g}"

    def train(
        self,
        command_for: Callable[[Stage], str] | None = None,
        progress: Callable[[str], object] | None = None,
        announce: Callable[[str], None] | None = None,
    ) -> tuple[str, list]:
        """Train (or reuse) the job's runs; returns (the table or run lines to print, the StageRuns)."""
        from data import load_feature_file, load_feature_set
        from training.chain import chain_table, configs_for, run_chain
        from training.stages import DeviceData, StageContext, run_stage
        from training.store import RunStore
        from utils.device import resolve_device
        from utils.threads import cpu_threads, training_threads

        if self.features is not None:
            features = load_feature_file(self.features)
        else:
            features = load_feature_set(self.dataset, self.options)
        base = self._with_identity(features.name, features.source, features.backbone, features.weights)
        base = base.validate(features.num_classes)
        device = resolve_device(self.options.device, self.options.gpu_id)
        heads = len(self.seeds) * len(self.rates)
        threads = training_threads(self.threads, base.train_batch * features.dim * features.num_classes * heads)
        store = RunStore(self.store)
        for leftover in store.sweep():
            log.info("removed %s, left by a process that stopped", leftover)
        hooks = {key: value for key, value in (("progress", progress), ("announce", announce)) if value is not None}
        ctx = StageContext(
            store=store,
            csv_path=lambda config: self.csv,
            command_for=command_for or (lambda stage: f"a sweep with this job ({self.describe()})"),
            threads=threads,
            force=self.force,
            **hooks,
        )
        with cpu_threads(threads), labelled(features.name):  # each dataset's lines name it
            clusters = _noise_clusters(features) if base.ctype == "cc" else None
            data = DeviceData.load(features, device, clusters)
            if self.only is None:
                runs = run_chain(base, list(self.seeds), list(self.rates), list(self.stages), data, ctx)
                header = (
                    f"{features.name}: {base.ctype} noise, seeds {' '.join(map(str, self.seeds))}, "
                    f"lr {base.lr:g}, wd {base.wd:g}, {base.optimizer}, {base.seeding} seeding, test accuracy "
                    f"(%) selected by {base.select}, mean ± std over seeds"
                )
                reused = sum(run.reused for run in runs)
                note = (
                    f"\n{reused} of {len(runs)} runs reused from {self.store}/ (--force trains them again)"
                    if reused
                    else ""
                )
                table = chain_table([run.record for run in runs], exact=base.optimizer == "lbfgs")
                return f"{header}\n{table}{note}", runs
            runs = run_stage(configs_for(base, self.only, list(self.seeds), list(self.rates)), data, ctx)
        return "\n".join(run_line(run.record, run.reused) for run in runs), runs


def run_line(record, reused: bool) -> str:
    m, c = record.metrics, record.config
    return (
        f"{c.stage.label:>9}  η={c.corruption:g} seed {c.seed}: test {m['test_acc']:.2f}% (epoch "
        f"{m['best_epoch']}), final {m['final_acc']:.2f}%, train {m['train_acc']:.2f}%  "
        f"{'reused' if reused else 'trained'}: {record.name}"
    )


def _noise_clusters(features):
    from data.clusters import NOISE_CUT, class_similarity, cluster_classes

    similarity = class_similarity(features.train_features, features.train_labels, features.num_classes)
    return cluster_classes(similarity, NOISE_CUT)


def _result(name: str, start: float, **counts) -> JobResult:
    return JobResult(name, True, round(time.perf_counter() - start, 3), os.getpid(), platform.node(), **counts)


def run_job(job: ExtractJob | ChainJob, *needs: JobResult) -> JobResult:
    """Run ``job`` after the jobs it needs (their results); a failure is a result with a one-line error.

    What workers of every launcher call. An unexpected exception's traceback goes to this process's
    stderr (the worker's log); its last line comes back as the error.
    """
    from utils.errors import UserError, describe_os_error, signal_handlers

    name = job.describe() if isinstance(job, ChainJob) else f"extract {job.dataset}"
    start = time.perf_counter()
    failed = [need.job for need in needs if not need.ok]
    if failed:
        return _failure(name, start, f"not run: {', '.join(failed)} failed")
    try:
        # a scheduler's SIGTERM or a Ctrl-C unwinds the job: no temporary run, no lock left; every progress
        # line names the job (workers of a parallel sweep share one stderr)
        with signal_handlers(), labelled(name):
            return job.run()
    except UserError as error:
        return _failure(name, start, str(error))
    except OSError as error:
        return _failure(name, start, describe_os_error(error))
    except Exception as error:
        traceback.print_exc()
        return _failure(name, start, f"{type(error).__name__}: {error} (a bug: the traceback is in the worker's log)")


def _failure(name: str, start: float, message: str) -> JobResult:
    return JobResult(
        name,
        False,
        round(time.perf_counter() - start, 3),
        os.getpid(),
        platform.node(),
        error=" ".join(message.split()),
    )
