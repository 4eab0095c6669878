"""Label averaging, seen: the softmax outputs of the teacher and the students projected onto a simplex.

Reduction to k chosen classes S: a training instance with logits z = W φ(x) (K,) gets
q = softmax(z_S) (k,), which equals the full softmax renormalised over S, p_S / Σ_{j∈S} p_j
(the paper's "reduced to four-class classification outputs"). Only instances whose true class is
in S are shown.

Projection: q ↦ Σ_j q_j c_j with c_j the corners of a regular k-gon on the unit circle,
c_j = (cos θ_j, sin θ_j), θ_j = π/2 + 2πj/k, turned by a further π/k when k is even so that a square
stands on a side. The map is linear: one-hot e_j goes to corner c_j, the uniform vector to the
origin. For k = 3 it is the standard barycentric triangle (one-to-one). For k = 4 it is the
orthographic projection of the regular tetrahedron along the line joining the midpoints of two
opposite edges: the square's diagonals are the edges between the first and third classes and
between the second and fourth, so an even mix of two diagonal classes lands at the centre too.

Runs are found by their stored configuration (run.json), never by parsing folder names: a
teacher matching the dataset, features, depth, ctype, η, seed and any given settings, then the
students and the PLL student that name it (or the previous student) as their teacher.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from data.feature_set import FeatureSet
from training import runs
from training.chain import row_label
from training.config import PLL, TrainConfig
from utils.errors import UsageError, UserError

log = logging.getLogger(__name__)
MAX_CLASSES = 10  # one colour each from matplotlib's default cycle


def polygon_corners(k: int) -> np.ndarray:
    """Corners (k, 2) of the regular k-gon on the unit circle, first corner at the top (k odd) or top left (k even)."""
    angles = np.pi / 2 + 2 * np.pi * np.arange(k) / k + (np.pi / k if k % 2 == 0 else 0.0)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def project(probabilities: np.ndarray) -> np.ndarray:
    """Points (N, 2) = Q C for outputs Q (N, k) on the simplex and the k-gon's corners C (k, 2)."""
    return probabilities @ polygon_corners(probabilities.shape[1])


def reduced_softmax(logits: np.ndarray, classes: list[int]) -> np.ndarray:
    """softmax(z_S) (N, k) for logits z (N, K): the full softmax renormalised over the classes S."""
    z = np.asarray(logits, dtype=np.float64)[:, classes]
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def default_classes(labels: np.ndarray, num_classes: int, count: int = 4) -> list[int]:
    """The ``count`` classes with the most training samples (ties: lower index first), in index order."""
    counts = np.bincount(labels, minlength=num_classes)
    return sorted(np.argsort(-counts, kind="stable")[:count].tolist())


def parse_classes(tokens: list[str], class_names: tuple[str, ...]) -> list[int]:
    """Class indices for tokens that are class names or indices 0..K−1 (a name wins where both fit)."""
    k = len(class_names)
    chosen = []
    for token in tokens:
        if token in class_names:
            chosen.append(class_names.index(token))
        elif token.lstrip("-").isdigit() and 0 <= int(token) < k:
            chosen.append(int(token))
        else:
            shown = ", ".join(class_names[:6]) + (", …" if k > 6 else "")
            raise UsageError(f"unknown class {token!r}; give indices 0..{k - 1} or class names ({shown})")
    if len(set(chosen)) != len(chosen):
        raise UsageError(f"--classes names a class twice: {' '.join(tokens)}")
    if not 2 <= len(chosen) <= MAX_CLASSES:
        raise UsageError(f"--classes needs 2 to {MAX_CLASSES} classes (one colour each), got {len(chosen)}")
    return chosen


@dataclasses.dataclass(frozen=True)
class StageRun:
    """A finished run folder with its configuration, metrics and the name of the run it learned from."""

    folder: Path
    config: TrainConfig
    metrics: dict
    teacher: str | None


def read_stage_run(folder: Path) -> StageRun:
    if not runs.is_complete(folder):
        raise UserError(f"{folder} is not a finished run folder (it needs run.json, best.ckpt, last.ckpt and "
                        "labels.npz as train_linear.py writes them)")
    try:
        run = runs.read_run(folder)
        return StageRun(folder, TrainConfig.from_dict(run["config"]), run["metrics"], run.get("teacher"))
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise UserError(f"cannot read {folder / runs.RUN_JSON} ({type(error).__name__}); retrain that run") from None


def scan_runs(root: Path) -> list[StageRun]:
    """Every finished run folder directly under ``root``; unreadable ones are skipped with a warning."""
    found = []
    for folder in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        if runs.is_complete(folder):
            try:
                found.append(read_stage_run(folder))
            except UserError as error:
                log.warning("skipping %s", error)
    return found


def stage_key(stage: int | str) -> tuple[bool, int]:
    """Sort key: teacher, students by round, then PLL."""
    return (stage == PLL, 0 if stage == PLL else int(stage))


@dataclasses.dataclass(frozen=True)
class RunQuery:
    """What picks a chain's runs: the features, the noise, the seed and any settings the user fixed."""

    feature_source: str
    depth: int
    weights: str
    ctype: str
    seed: int
    settings: dict  # weight settings (TrainConfig.weight_settings keys) that must match where a stage has them

    def mismatches(self, run: StageRun) -> list[str]:
        """The fields and settings in which ``run`` differs from the query (empty: it matches)."""
        config = run.config
        fixed = {"feature_source": self.feature_source, "depth": self.depth, "weights": self.weights,
                 "ctype": self.ctype, "seed": self.seed}
        stored = config.weight_settings()
        return ([key for key, value in fixed.items() if getattr(config, key) != value]
                + [key for key, value in self.settings.items() if key in stored and stored[key] != value])

    def matches(self, run: StageRun) -> bool:
        return not self.mismatches(run)

    def near_misses(self, found: list[StageRun], eta: float | None) -> str:
        """'; N teacher runs differ only in epochs (2 there vs 3 asked)', or '' when none do."""
        near = []
        for run in found:
            if run.config.is_teacher and eta in (None, run.config.corruption):
                wrong = self.mismatches(run)
                if wrong and set(wrong) <= set(self.settings):
                    near.append((run, wrong))
        if not near:
            return ""
        run, wrong = near[0]
        stored = run.config.weight_settings()
        shown = ", ".join(f"{key} {stored[key]} there vs {self.settings[key]} asked" for key in wrong)
        return f"; {len(near)} teacher run(s) differ only in settings ({shown}, e.g. {run.folder.name})"


def _single(candidates: list[StageRun], what: str) -> StageRun:
    if len(candidates) == 1:
        return candidates[0]
    settings = [c.config.weight_settings() for c in candidates]
    differing = sorted({key for s in settings for key in s if len({repr(t.get(key)) for t in settings}) > 1})
    shown = "; ".join(f"{key}: {', '.join(sorted({str(s.get(key)) for s in settings}))}" for key in differing)
    flags = " ".join(f"--{key.replace('_', '-')}" for key in differing)
    raise UserError(f"{len(candidates)} {what} runs match ({shown or 'same settings'}: "
                    f"{', '.join(c.folder.name for c in candidates)}); pick one with {flags or '--runs'}")


def find_chains(found: list[StageRun], query: RunQuery, rates: list[float] | None,
                chain_command) -> list[list[StageRun]]:
    """For each η (all found when ``rates`` is None): the teacher, students 1, 2, … as far as they go, and PLL.

    ``chain_command(eta)`` is the train_linear.py command that trains the missing chain; a missing
    teacher is a :class:`UserError` naming it, and so is a choice between several matching runs.
    """
    matching = [run for run in found if query.matches(run)]
    teachers = [run for run in matching if run.config.is_teacher]
    pupils = [run for run in matching if not run.config.is_teacher]
    wanted = sorted({run.config.corruption for run in teachers}) if rates is None else list(rates)
    if not wanted:
        raise UserError(f"no teacher run for these features, ctype {query.ctype} and seed {query.seed}"
                        f"{query.near_misses(found, None)}; train the chain with: {chain_command(None)}")
    chains = []
    for eta in wanted:
        candidates = [run for run in teachers if run.config.corruption == eta]
        if not candidates:
            raise UserError(f"no teacher run for η={eta:g} (ctype {query.ctype}, seed {query.seed})"
                            f"{query.near_misses(found, eta)}; train the chain with: {chain_command(eta)}")
        chain = [_single(candidates, f"teacher η={eta:g}")]
        while True:
            previous = chain[-1]
            stage = int(previous.config.stage) + 1
            following = [r for r in pupils if r.config.stage == stage and r.teacher == previous.folder.name]
            if not following:
                break
            chain.append(_single(following, f"student {stage} η={eta:g}"))
        pll = [r for r in pupils if r.config.is_pll and r.teacher == chain[0].folder.name]
        if pll:
            chain.append(_single(pll, f"PLL η={eta:g}"))
        chains.append(chain)
    return chains


def chains_from_folders(folders: list[Path]) -> list[list[StageRun]]:
    """Run folders given directly, grouped into chains by (features, ctype, η, seed), stages in order."""
    grouped: dict[tuple, list[StageRun]] = {}
    for folder in folders:
        run = read_stage_run(Path(folder))
        c = run.config
        grouped.setdefault((c.feature_source, c.ctype, c.corruption, c.seed), []).append(run)
    chains = []
    for key in sorted(grouped, key=lambda k: (k[1], k[2], k[3])):
        chain = sorted(grouped[key], key=lambda r: stage_key(r.config.stage))
        stages = [r.config.stage for r in chain]
        if len(set(stages)) != len(stages):
            raise UserError(f"two runs of one stage for η={key[2]:g}, seed {key[3]}: "
                            f"{', '.join(r.folder.name for r in chain)}; give one run per stage")
        chains.append(chain)
    return chains


def load_weights(run: StageRun, which: str, features: FeatureSet, retrain: str) -> np.ndarray:
    """The head W (K, D) from ``best.ckpt`` or ``last.ckpt``, checked against the features."""
    path = run.folder / f"{which}.ckpt"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        weights, stored = checkpoint["weight"], checkpoint["config"]
    except Exception as error:  # torch raises many types for a bad file
        raise UserError(f"checkpoint {path} is unreadable ({type(error).__name__}); "
                        f"retrain it with: {retrain}") from None
    if stored.get("feature_source") != features.source:
        raise UserError(f"{run.folder.name} was trained on features {stored.get('feature_source')!r}, not on "
                        f"{features.source!r}; pass the -d/--features flags it was trained with")
    if tuple(weights.shape) != (features.num_classes, features.dim):
        raise UserError(f"checkpoint {path} has weights of shape {tuple(weights.shape)} but the features need "
                        f"({features.num_classes}, {features.dim})")
    return weights.double().numpy()


@dataclasses.dataclass(frozen=True)
class Panel:
    """One stage's projected outputs: points (n, 2) and each point's position (n,) in the chosen classes."""

    stage: int | str
    title: str
    points: np.ndarray
    labels: np.ndarray


def stage_panel(run: StageRun, weights: np.ndarray, features: FeatureSet, classes: list[int], which: str) -> Panel:
    """Project the outputs on the training instances whose true class is in ``classes``."""
    shown = np.isin(features.train_labels, classes)
    logits = np.asarray(features.train_features[shown], dtype=np.float64) @ weights.T  # (n, K)
    points = project(reduced_softmax(logits, classes))
    position = {k: i for i, k in enumerate(classes)}
    labels = np.array([position[k] for k in features.train_labels[shown]], dtype=np.int64)
    accuracy = run.metrics.get("test_acc" if which == "best" else "final_acc")
    title = row_label(run.config.stage) + (f" (test {accuracy:.1f}%)" if accuracy is not None else "")
    return Panel(run.config.stage, title, points, labels)


def plot_simplex_grid(rows: list[tuple[str, list[Panel]]], class_names: list[str], title: str) -> Figure:
    """A grid of panels: one row per chain (labelled), one column per stage; points coloured by true class."""
    stages = sorted({p.stage for _, panels in rows for p in panels}, key=stage_key)
    k = len(class_names)
    corners = polygon_corners(k)
    outline = np.vstack([corners, corners[:1]])
    low, high = corners.min(axis=0) - 0.25, corners.max(axis=0) + 0.25  # room for the corner labels
    colours = [f"C{i}" for i in range(k)]
    size, legend_height = 2.8, 0.6
    height = size * len(rows) + legend_height + 0.5
    figure = Figure(figsize=(size * len(stages) + 0.4, height))
    axes = figure.subplots(len(rows), len(stages), squeeze=False)
    for r, (row_title, panels) in enumerate(rows):
        by_stage = {p.stage: p for p in panels}
        for c, stage in enumerate(stages):
            ax = axes[r, c]
            ax.set_aspect("equal")
            ax.set_xlim(low[0], high[0])
            ax.set_ylim(low[1], high[1])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c == 0:
                ax.set_ylabel(row_title, fontsize=10)
            panel = by_stage.get(stage)
            if panel is None:
                ax.set_title(f"{row_label(stage)}: not trained", fontsize=9, color="grey")
                continue
            ax.plot(outline[:, 0], outline[:, 1], color="black", linewidth=0.8)
            ax.scatter(panel.points[:, 0], panel.points[:, 1], c=[colours[i] for i in panel.labels], s=5,
                       alpha=0.45, linewidths=0, rasterized=True)
            for (x, y), name in zip(corners, class_names):
                ax.text(1.12 * x, 1.12 * y, name, ha="center", va="center", fontsize=8)
            ax.set_title(panel.title, fontsize=9)
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[i], label=name)
               for i, name in enumerate(class_names)]
    figure.legend(handles=handles, title="true class", loc="lower center", ncol=min(k, 10), fontsize=8,
                  title_fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, legend_height / height, 1, 1 - 0.3 / height))
    return figure


def describe(chains: list[list[StageRun]]) -> str:
    """One line per chain: its η and the run folders it plots."""
    return "\n".join(f"η={chain[0].config.corruption:g} seed {chain[0].config.seed}: "
                     + ", ".join(f"{row_label(r.config.stage)} {r.folder.name}" for r in chain) for chain in chains)
