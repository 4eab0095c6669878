"""Feature correlations of a dataset: class-similarity matrix M, its clusters and statistics, instance Gram matrix.

Every quantity uses the training features, centred by their mean with each row L2-normalised, so
every inner product is a cosine similarity:

- M (K, K): ``data.clusters.class_similarity``. M[i, j] is the mean cosine similarity between
  the samples of class i and those of class j; M[i, i] averages over distinct pairs only.
- clusters ("superclasses"): ``data.clusters.cluster_classes(M, TABLE_CUT)``, complete linkage of
  the rows of 1 − M cut at 0.9 × the largest merge height (the reference's statistics table; the
  ``cc`` noise cuts the same tree at 0.8).
- intra-class correlation: the mean of M's diagonal, (1/K) Σ_k M[k, k].
- intra-superclass correlation: the mean of M[i, j] over ordered class pairs i ≠ j in one cluster.
- inter-superclass correlation: the mean of M[i, j] over class pairs in different clusters.
  Class pairs count equally whatever their sizes; a mean over no pair (every cluster a single
  class, or a single cluster) is NaN.
- instance Gram matrix G (n, n) = U Uᵀ for ``per_class`` training samples drawn per class (U: their
  centred, normalised rows), grouped by class, and its eigenvalues (the paper's Φ on a sample).

The figures are matplotlib ``Figure`` objects (no pyplot state); the caller saves them.
:func:`dataset_figures` gives one dataset's statistics row and its four figures, keyed by
:data:`FIGURE_KINDS`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy.cluster import hierarchy

from data.clusters import NOISE_CUT, TABLE_CUT, centred_unit_rows, class_similarity, cluster_classes, groups, linkage_of
from data.feature_set import FeatureSet
from utils.escaping import figure_text, markdown_cell
from utils.seeding import numpy_rng

# The figures of one dataset; the last two depend on the instance sample (per-class count, seed).
FIGURE_KINDS = ("class-correlation", "dendrogram", "gram", "gram-spectrum")
SAMPLED_KINDS = ("gram", "gram-spectrum")
# Peak bytes per squared sampled instance while the Gram image is made and rendered (G, |G| off the
# diagonal, the quantile's sorted copy, matplotlib's normalised copies): tracemalloc measured 77 at
# n = 2000 and 92 at n = 1000 (fixed costs weigh more there).
GRAM_BYTES_PER_ENTRY = 80

# Beyond this many classes the heatmap's cells are too small to carry their values as text.
ANNOTATE_MAX_CLASSES = 12


@dataclasses.dataclass(frozen=True)
class ClassCorrelation:
    """M, its complete-linkage tree, the clusters at ``cut`` and the tree's leaf order (clusters contiguous)."""

    similarity: np.ndarray  # (K, K)
    tree: np.ndarray  # (K − 1, 4) scipy linkage
    clusters: np.ndarray  # (K,) cluster id per class
    order: np.ndarray  # (K,) class indices in dendrogram leaf order
    cut: float


@dataclasses.dataclass(frozen=True)
class CorrelationStats:
    """One row of the statistics table."""

    dataset: str
    num_classes: int
    num_train: int
    dim: int
    num_clusters: int
    intra_class: float
    intra_superclass: float
    inter_superclass: float


def class_correlation(features: FeatureSet, cut: float = TABLE_CUT) -> ClassCorrelation:
    similarity = class_similarity(features.train_features, features.train_labels, features.num_classes)
    tree = linkage_of(similarity)
    return ClassCorrelation(similarity, tree, cluster_classes(similarity, cut), hierarchy.leaves_list(tree), cut)


def group_means(similarity: np.ndarray, cluster_ids: np.ndarray) -> tuple[float, float, float]:
    """(intra-class, intra-superclass, inter-superclass) means of M (K, K) under cluster ids (K,).

    intra-class = mean_k M[k, k]; intra-superclass = mean of M[i, j] over i ≠ j with
    c_i = c_j; inter-superclass = mean of M[i, j] over c_i ≠ c_j. NaN for a mean over no pair.
    """
    k = similarity.shape[0]
    same = cluster_ids[:, None] == cluster_ids[None, :]
    within = similarity[same & ~np.eye(k, dtype=bool)]
    between = similarity[~same]
    return (
        float(np.diag(similarity).mean()),
        float(within.mean()) if within.size else math.nan,
        float(between.mean()) if between.size else math.nan,
    )


def statistics(features: FeatureSet, correlation: ClassCorrelation) -> CorrelationStats:
    intra, intra_super, inter = group_means(correlation.similarity, correlation.clusters)
    return CorrelationStats(
        features.name,
        features.num_classes,
        int(features.train_features.shape[0]),
        features.dim,
        int(correlation.clusters.max()) + 1,
        intra,
        intra_super,
        inter,
    )


def stats_table(rows: list[CorrelationStats]) -> str:
    """A Markdown table, one row per dataset; NaN shows as —."""
    number = lambda value: "—" if math.isnan(value) else f"{value:.4f}"  # noqa: E731
    cut = f"{TABLE_CUT:g}"
    lines = [
        f"| dataset | classes | train samples | dim | clusters ({cut} cut) | intra-class | intra-superclass | "
        "inter-superclass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {markdown_cell(r.dataset)} | {r.num_classes} | {r.num_train} | {r.dim} | {r.num_clusters} | "
        f"{number(r.intra_class)} | {number(r.intra_superclass)} | {number(r.inter_superclass)} |"
        for r in rows
    ]
    return "\n".join(lines)


def sample_count(labels: np.ndarray, num_classes: int, per_class: int) -> int:
    """n = Σ_k min(per_class, n_k): how many instances :func:`sample_per_class` draws."""
    counts = np.bincount(labels, minlength=num_classes)
    return int(np.minimum(counts, per_class).sum())


def sample_per_class(
    labels: np.ndarray, per_class: int, rng: np.random.Generator, class_order: np.ndarray
) -> np.ndarray:
    """Row indices (n,): min(per_class, n_k) rows of each class drawn without replacement, grouped by class.

    Classes come in ``class_order``; within a class the rows keep their dataset order.
    """
    picked = []
    for k in class_order:
        members = np.flatnonzero(labels == k)
        picked.append(np.sort(rng.choice(members, size=min(per_class, members.size), replace=False)))
    return np.concatenate(picked).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class InstanceSample:
    """Sampled training rows grouped by class, and their centred, normalised features U (n, D)."""

    index: np.ndarray  # (n,) rows of the training set
    labels: np.ndarray  # (n,) their classes
    unit: np.ndarray  # (n, D)

    @property
    def gram(self) -> np.ndarray:
        """G = U Uᵀ (n, n): cosine similarities between the sampled instances."""
        return self.unit @ self.unit.T


def sample_instances(features: FeatureSet, per_class: int, seed: int, class_order: np.ndarray) -> InstanceSample:
    """``per_class`` rows per class drawn from ``seed``, centred by the mean of the whole training set."""
    x = features.train_features
    index = sample_per_class(features.train_labels, per_class, numpy_rng(seed, "gram-sample"), class_order)
    unit = centred_unit_rows(x[index], np.asarray(x, dtype=np.float64).mean(axis=0))
    return InstanceSample(index, features.train_labels[index], unit)


def gram_spectrum(unit: np.ndarray) -> np.ndarray:
    """Eigenvalues (n,) of G = U Uᵀ in descending order, for U (n, D).

    They are the squared singular values of U, padded with zeros to n: an SVD of the thin
    (n, D) matrix rather than an eigensolve of the (n, n) one.
    """
    singular = np.linalg.svd(unit, compute_uv=False)
    eigenvalues = np.zeros(unit.shape[0])
    eigenvalues[: singular.size] = singular**2
    return eigenvalues


def label_size(count: int) -> float:
    """A tick-label font size (points) that keeps ``count`` labels legible and apart."""
    return float(np.clip(240 / max(count, 1), 3, 9))


def figure_size(count: int) -> float:
    """Side (inches) of a square figure with ``count`` labelled rows."""
    return float(np.clip(0.22 * count + 3, 5, 18))


def plot_class_correlation(name: str, class_names: tuple[str, ...], correlation: ClassCorrelation) -> Figure:
    """Heatmap of M with classes in dendrogram order; boxes mark the clusters."""
    k = len(class_names)
    order = correlation.order
    m = correlation.similarity[np.ix_(order, order)]
    limit = float(np.abs(m).max()) or 1.0
    size = figure_size(k)
    figure = Figure(figsize=(size + 1.5, size))
    ax = figure.add_subplot()
    image = ax.imshow(m, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="mean cosine similarity")
    names = [class_names[i] for i in order]
    ax.set_xticks(range(k), names, rotation=90, fontsize=label_size(k))
    ax.set_yticks(range(k), names, fontsize=label_size(k))
    position = np.empty(k, dtype=np.int64)
    position[order] = np.arange(k)
    for members in groups(correlation.clusters):
        spots = np.sort(position[members])
        ax.add_patch(
            Rectangle(
                (spots[0] - 0.5, spots[0] - 0.5), spots.size, spots.size, fill=False, edgecolor="black", linewidth=1.5
            )
        )
    if k <= ANNOTATE_MAX_CLASSES:
        for (i, j), value in np.ndenumerate(m):
            ax.text(
                j,
                i,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if abs(value) > 0.6 * limit else "black",
            )
    clusters = int(correlation.clusters.max()) + 1
    ax.set_title(
        f"{name}: class correlation M (classes in dendrogram order; boxes: {clusters} clusters "
        f"at {correlation.cut:g} cut)",
        fontsize=10,
    )
    ax.set_xlabel("class")
    ax.set_ylabel("class")
    return figure


def plot_dendrogram(name: str, class_names: tuple[str, ...], correlation: ClassCorrelation) -> Figure:
    """Complete-linkage dendrogram of the rows of 1 − M, coloured by the clusters at ``correlation.cut``."""
    k = len(class_names)
    top = float(correlation.tree[:, 2].max())
    figure = Figure(figsize=(max(6.0, 0.18 * k + 3), 4.5))
    ax = figure.add_subplot()
    hierarchy.dendrogram(
        correlation.tree,
        labels=list(class_names),
        ax=ax,
        color_threshold=correlation.cut * top,
        above_threshold_color="grey",
        leaf_rotation=90,
        leaf_font_size=label_size(k),
    )
    cuts = {correlation.cut: "statistics table", NOISE_CUT: "cc noise"}
    for cut, style in zip(cuts, ("--", ":")):
        ax.axhline(
            cut * top, color="black", linestyle=style, linewidth=1, label=f"{cut:g} × top merge height ({cuts[cut]})"
        )
    ax.set_ylim(0, 1.3 * top)  # headroom above the top merge for the legend
    ax.legend(loc="upper right", fontsize=8)
    ax.set_ylabel("complete-linkage distance\n(rows of 1 − M)")
    ax.set_title(f"{name}: class dendrogram", fontsize=10)
    return figure


def plot_gram(name: str, class_names: tuple[str, ...], sample: InstanceSample) -> Figure:
    """Image of the sampled instances' Gram matrix, instances grouped by class, class blocks outlined."""
    gram = sample.gram
    n = gram.shape[0]
    off_diagonal = np.abs(gram[~np.eye(n, dtype=bool)])
    # Unit diagonal entries would set the scale and wash out the blocks; clip at the 99th percentile.
    limit = float(np.quantile(off_diagonal, 0.99)) if off_diagonal.size else 1.0
    figure = Figure(figsize=(7.5, 6.2))
    ax = figure.add_subplot()
    image = ax.imshow(gram, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, extend="both", label="cosine similarity")
    starts = np.flatnonzero(np.r_[True, sample.labels[1:] != sample.labels[:-1]])
    ends = np.r_[starts[1:], n]
    for boundary in starts[1:]:
        for line in (ax.axhline, ax.axvline):
            line(boundary - 0.5, color="black", linewidth=0.3)
    classes = sample.labels[starts]
    if classes.size <= 40:
        centres = (starts + ends - 1) / 2
        names = [class_names[k] for k in classes]
        ax.set_xticks(centres, names, rotation=90, fontsize=label_size(classes.size))
        ax.set_yticks(centres, names, fontsize=label_size(classes.size))
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    per_class = int(np.max(ends - starts))
    ax.set_title(
        f"{name}: Gram matrix of {n} training instances ({per_class} per class), grouped by class", fontsize=10
    )
    ax.set_xlabel("instance (by class)")
    ax.set_ylabel("instance (by class)")
    return figure


def plot_spectrum(name: str, eigenvalues: np.ndarray, num_classes: int) -> Figure:
    """Eigenvalues of the sampled Gram matrix against their rank (log scale); a line at rank K."""
    n = eigenvalues.size
    positive = eigenvalues[eigenvalues > eigenvalues[0] * 1e-12]
    share = eigenvalues[:num_classes].sum() / eigenvalues.sum()
    figure = Figure(figsize=(6.5, 4.2))
    ax = figure.add_subplot()
    ax.semilogy(np.arange(1, positive.size + 1), positive, marker=".", markersize=3, linewidth=0.8)
    ax.axvline(num_classes, color="grey", linestyle="--", linewidth=1, label=f"rank K = {num_classes}")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("rank")
    ax.set_ylabel("eigenvalue")
    ax.set_title(
        f"{name}: eigenvalues of the Gram matrix ({n} instances; top {num_classes} hold "
        f"{100 * share:.1f}% of the trace)",
        fontsize=10,
    )
    if positive.size < n:
        ax.text(
            0.02,
            0.03,
            f"{n - positive.size} eigenvalues ≈ 0 not shown (G has rank {positive.size})",
            transform=ax.transAxes,
            fontsize=8,
        )
    return figure


def dataset_figures(features: FeatureSet, per_class: int, seed: int) -> tuple[CorrelationStats, dict[str, Figure]]:
    """The statistics row of one dataset and its figures, keyed by :data:`FIGURE_KINDS`."""
    correlation = class_correlation(features)
    sample = sample_instances(features, per_class, seed, correlation.order)
    eigenvalues = gram_spectrum(sample.unit)
    name, class_names = figure_text(features.name), tuple(map(figure_text, features.class_names))
    figures = {
        "class-correlation": plot_class_correlation(name, class_names, correlation),
        "dendrogram": plot_dendrogram(name, class_names, correlation),
        "gram": plot_gram(name, class_names, sample),
        "gram-spectrum": plot_spectrum(name, eigenvalues, features.num_classes),
    }
    return statistics(features, correlation), figures
