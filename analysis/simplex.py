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

Runs come from the run store, never by parsing folder names: the teachers of the features, ctype
and seed in the setting the report rules choose (analysis.settings), then the students and the PLL
student that name them (or the previous student) as their teacher.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import settings as settings_mod
from analysis.settings import Setting
from data.feature_set import FeatureSet
from data.registry import check_dataset_name
from utils.errors import UsageError, UserError
from utils.escaping import figure_text
from utils.stages import Stage

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


def records_from_folders(folders: list[Path]):
    """Run folders given directly (published entries of a store, or old-format folders), read and verified."""
    from training.store import RunStore

    records = []
    for folder in folders:
        folder = Path(folder)
        if not (folder / "run.json").is_file():
            raise UserError(
                f"{folder} is not a run folder (it has no run.json); give folders train_linear.py "
                f"published in its run store"
            )
        found = RunStore(folder.parent).inspect(folder)
        if found.record is None:
            raise UserError(f"run {folder} is damaged ({found.problem}); train it again")
        records.append(found.record)
    return records


def require_teacher_runs(records, dataset: str, ctype: str, seed: int, chain_command) -> None:
    """Before any feature is loaded (or downloaded): the store must hold a teacher of ``dataset`` with this
    noise type and seed, else a :class:`UserError` with the command that trains the chain. The cheap
    check first, so that a dataset without runs is not downloaded only to be refused."""
    check_dataset_name(dataset)
    if not any(r.config.dataset == dataset and r.config.ctype == ctype and r.config.seed == seed for r in records):
        raise UserError(
            f"no teacher run for these features, ctype {ctype} and seed {seed} (none of {dataset} in the store); "
            f"train the chain with: {chain_command(None)}"
        )


def find_chains(
    records, features: FeatureSet, ctype: str, seed: int, wanted: dict, rates: list[float] | None, chain_command
) -> tuple[list[list], str, Setting]:
    """For each η (all in the setting when ``rates`` is None): the teacher, students 1, 2, … as far as they go,
    and PLL, in the setting the report rules choose (analysis.settings). Returns the chains, the other
    settings present (a sentence) and the chosen setting.

    ``chain_command(eta)`` is the train_linear.py command that trains a missing chain; a missing teacher
    is a :class:`UserError` naming it.
    """
    mine = [r for r in records if r.config.feature_source == features.source and r.config.seed == seed]
    by_config = {r.config: r for r in mine}
    settings = settings_mod.settings_of(list(by_config))
    chosen, others = settings_mod.choose(settings, features.name, {"ctype": ctype, **wanted})
    if chosen is None:
        asked = {"ctype": ctype, **wanted}
        there = sorted(
            {", ".join(f"{settings_mod.flag(f)} {settings_mod.display(f, s.get(f))}" for f in asked) for s in settings}
        )
        present = f" (runs there have {'; '.join(there)}: select them with those flags)" if there else ""
        filters = [f"{settings_mod.flag(f)} {settings_mod.display(f, v)}" for f, v in wanted.items()]
        raise UserError(
            f"no teacher run for these features, ctype {ctype} and seed {seed}"
            f"{' with ' + ', '.join(filters) if filters else ''}"
            f"{present}; train the chain with: {chain_command(None)}"
        )
    runs = [by_config[c] for c in settings[chosen]]
    teachers = {r.config.corruption: r for r in runs if r.config.is_teacher}
    wanted_rates = sorted(teachers) if rates is None else list(rates)
    chains = []
    for eta in wanted_rates:
        if eta not in teachers:
            raise UserError(
                f"no teacher run for η={eta:g} (ctype {ctype}, seed {seed}, {chosen.describe(['lr', 'wd', 'epochs'])})"
                f"; train the chain with: {chain_command(eta)}"
            )
        chain = [teachers[eta]]
        while True:
            following = [
                r
                for r in runs
                if r.config.stage == Stage.student(chain[-1].config.stage.round + 1)
                and r.config.corruption == eta
                and r.teacher == chain[-1].name
            ]
            if not following:
                break
            chain.append(following[0])
        chain += [r for r in runs if r.config.is_pll and r.config.corruption == eta and r.teacher == chain[0].name][:1]
        chains.append(chain)
    # plot_softmax_simplex.py's --which is the checkpoint it plots, not a filter of the students' checkpoint.
    return chains, settings_mod.describe_others(chosen, others, settings, unselectable=("last",)), chosen


def chains_from_records(records) -> list[list]:
    """Runs given directly, grouped into chains by (features, ctype, η, seed), stages in order."""
    grouped: dict[tuple, list] = {}
    for record in records:
        c = record.config
        grouped.setdefault((c.feature_source, c.ctype, c.corruption, c.seed), []).append(record)
    chains = []
    for key in sorted(grouped, key=lambda k: (k[1], k[2], k[3])):
        chain = sorted(grouped[key], key=lambda r: r.config.stage.sort_key)
        stages = [r.config.stage for r in chain]
        if len(set(stages)) != len(stages):
            raise UserError(
                f"two runs of one stage for η={key[2]:g}, seed {key[3]}: "
                f"{', '.join(r.name for r in chain)}; give one run per stage"
            )
        chains.append(chain)
    return chains


def load_weights(record, which: str, features: FeatureSet) -> np.ndarray:
    """The head W (K, D) from the run's best or last checkpoint, checked against the features."""
    if record.config.feature_source != features.source:
        raise UserError(
            f"{record.name} was trained on features {record.config.feature_source!r}, not on "
            f"{features.source!r}; pass the -d/--features flags it was trained with"
        )
    weights = record.weights(which)
    if tuple(weights.shape) != (features.num_classes, features.dim):
        raise UserError(
            f"{record.name} has weights of shape {tuple(weights.shape)} but the features need "
            f"({features.num_classes}, {features.dim})"
        )
    return weights.double().numpy()


@dataclasses.dataclass(frozen=True)
class Panel:
    """One stage's projected outputs: points (n, 2) and each point's position (n,) in the chosen classes."""

    stage: Stage
    title: str
    points: np.ndarray
    labels: np.ndarray


def stage_panel(run, weights: np.ndarray, features: FeatureSet, classes: list[int], which: str) -> Panel:
    """Project the outputs on the training instances whose true class is in ``classes``."""
    shown = np.isin(features.train_labels, classes)
    logits = np.asarray(features.train_features[shown], dtype=np.float64) @ weights.T  # (n, K)
    points = project(reduced_softmax(logits, classes))
    position = {k: i for i, k in enumerate(classes)}
    labels = np.array([position[k] for k in features.train_labels[shown]], dtype=np.int64)
    accuracy = run.metrics.get("test_acc" if which == "best" else "final_acc")
    title = run.config.stage.label + (f" (test {accuracy:.1f}%)" if accuracy is not None else "")
    return Panel(run.config.stage, title, points, labels)


def plot_simplex_grid(rows: list[tuple[str, list[Panel]]], class_names: list[str], title: str) -> Figure:
    """A grid of panels: one row per chain (labelled), one column per stage; points coloured by true class."""
    stages = sorted({p.stage for _, panels in rows for p in panels}, key=lambda stage: stage.sort_key)
    class_names, title = [figure_text(name) for name in class_names], figure_text(title)  # names from data
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
                ax.set_title(f"{stage.label}: not trained", fontsize=9, color="grey")
                continue
            ax.plot(outline[:, 0], outline[:, 1], color="black", linewidth=0.8)
            ax.scatter(
                panel.points[:, 0],
                panel.points[:, 1],
                c=[colours[i] for i in panel.labels],
                s=5,
                alpha=0.45,
                linewidths=0,
                rasterized=True,
            )
            for (x, y), name in zip(corners, class_names):
                ax.text(1.12 * x, 1.12 * y, name, ha="center", va="center", fontsize=8)
            ax.set_title(panel.title, fontsize=9)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colours[i], label=name) for i, name in enumerate(class_names)
    ]
    figure.legend(
        handles=handles,
        title="true class",
        loc="lower center",
        ncol=min(k, 10),
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, legend_height / height, 1, 1 - 0.3 / height))
    return figure


def describe(chains: list[list]) -> str:
    """One line per chain: its η and the runs it plots."""
    return "\n".join(
        f"η={chain[0].config.corruption:g} seed {chain[0].config.seed}: "
        + ", ".join(f"{r.config.stage.label} {r.name}" for r in chain)
        for chain in chains
    )
