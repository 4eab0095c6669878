"""Feature correlations: statistics against brute force, the Gram sample and spectrum, output names, figure
groups written all or nothing, and the CLI's outputs."""

from __future__ import annotations

import errno
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

import feature_correlation_map
from analysis import figures as figure_io
from analysis.correlation import (
    class_correlation,
    gram_spectrum,
    group_means,
    sample_count,
    sample_instances,
    sample_per_class,
    statistics,
)
from data.registry import DataOptions
from data.synthetic import SyntheticConfig, make_synthetic
from feature_correlation_map import CorrelationConfig, backbone_label
from tests.fault_harness import os_refusal

PLANTED = SyntheticConfig(num_superclasses=2, classes_per_super=3, dim=16, train_per_class=8, test_per_class=2)


def brute_force_stats(features: np.ndarray, labels: np.ndarray, superclass: np.ndarray) -> tuple[float, float, float]:
    """Means of cosines over instance pairs, pair by pair, then over class pairs, straight from the definitions."""
    mean = features.mean(axis=0)

    def cosine(a: int, b: int) -> float:
        u, v = features[a] - mean, features[b] - mean
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    k = int(labels.max()) + 1
    m = np.zeros((k, k))
    for i, j in itertools.product(range(k), repeat=2):
        pairs = [cosine(a, b) for a in np.flatnonzero(labels == i) for b in np.flatnonzero(labels == j) if a != b]
        m[i, j] = sum(pairs) / len(pairs)
    intra = [m[i, i] for i in range(k)]
    within = [m[i, j] for i in range(k) for j in range(k) if i != j and superclass[i] == superclass[j]]
    between = [m[i, j] for i in range(k) for j in range(k) if superclass[i] != superclass[j]]
    return float(np.mean(intra)), float(np.mean(within)), float(np.mean(between))


def save_planted(path):
    data = make_synthetic(PLANTED)
    np.savez(
        path,
        train_features=data.train_features,
        train_labels=data.train_labels,
        test_features=data.test_features,
        test_labels=data.test_labels,
        class_names=np.array(data.class_names),
    )
    return data


def test_statistics_match_brute_force_on_planted_superclasses():
    data = make_synthetic(PLANTED)
    correlation = class_correlation(data)
    planted = np.array(data.superclasses)
    np.testing.assert_array_equal(
        correlation.clusters[:, None] == correlation.clusters[None, :], planted[:, None] == planted[None, :]
    )
    row = statistics(data, correlation)
    assert (row.num_classes, row.num_train, row.dim, row.num_clusters) == (6, 48, 16, 2)
    expected = brute_force_stats(data.train_features.astype(np.float64), data.train_labels, planted)
    np.testing.assert_allclose((row.intra_class, row.intra_superclass, row.inter_superclass), expected, atol=1e-10)
    assert row.intra_class > row.intra_superclass > row.inter_superclass


def test_group_means_without_pairs_are_nan_and_shown_as_dashes():
    m = np.array([[1.0, 0.2], [0.2, 0.5]])
    intra, within, between = group_means(m, np.array([0, 1]))
    assert intra == 0.75 and math.isnan(within) and between == 0.2
    assert math.isnan(group_means(m, np.array([0, 0]))[2])


def test_gram_sample_is_grouped_by_class_in_the_given_order():
    labels = np.array([2, 0, 1, 2, 0, 1, 2, 0, 2, 1, 0, 2])  # class 1 has 3 rows, fewer than per_class
    order = np.array([2, 0, 1])
    index = sample_per_class(labels, 4, np.random.default_rng(0), order)
    assert len(set(index.tolist())) == index.size
    np.testing.assert_array_equal(labels[index], [2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1])
    again = sample_per_class(labels, 4, np.random.default_rng(0), order)
    np.testing.assert_array_equal(index, again)


def test_gram_entries_are_cosines_of_centred_features():
    data = make_synthetic(PLANTED)
    order = np.arange(data.num_classes)[::-1]
    sample = sample_instances(data, 3, seed=5, class_order=order)
    position = {k: i for i, k in enumerate(order)}
    ranks = np.array([position[k] for k in sample.labels])
    assert np.all(np.diff(ranks) >= 0) and sample.labels.size == 3 * data.num_classes
    x = data.train_features.astype(np.float64) - data.train_features.astype(np.float64).mean(axis=0)
    rows = x[sample.index]
    expected = rows @ rows.T / np.outer(np.linalg.norm(rows, axis=1), np.linalg.norm(rows, axis=1))
    np.testing.assert_allclose(sample.gram, expected, atol=1e-12)
    assert not np.array_equal(sample.index, sample_instances(data, 3, seed=6, class_order=order).index)


@pytest.mark.parametrize("n, d", [(30, 8), (8, 30)])
def test_spectrum_matches_numpy_eigvalsh(n, d):
    unit = np.random.default_rng(n).normal(size=(n, d))
    expected = np.linalg.eigvalsh(unit @ unit.T)[::-1]
    eigenvalues = gram_spectrum(unit)
    assert eigenvalues.shape == (n,) and np.all(np.diff(eigenvalues) <= 0)
    np.testing.assert_allclose(eigenvalues, expected, atol=1e-9)


def test_sample_count_takes_all_of_a_small_class():
    labels = np.array([0, 0, 0, 1, 2, 2])
    assert sample_count(labels, 4, 2) == 2 + 1 + 2 + 0
    assert sample_count(labels, 4, 2) == sample_per_class(labels, 2, np.random.default_rng(0), np.arange(3)).size


# -- output names ---------------------------------------------------------------------------------


def names(config: CorrelationConfig) -> list[str]:
    return [path.name for path in config.output_paths()]


def test_table_is_named_by_the_inputs_it_covers(tmp_path):
    one = CorrelationConfig()
    two = CorrelationConfig(datasets=("digits", "synthetic"))
    files = CorrelationConfig(datasets=("digits",), feature_files=(Path("feats/my features,v2.npz"),))
    assert one.table_path == Path("reports/correlation_stats-digits.md")
    assert two.table_path == Path("reports/correlation_stats-digits+synthetic.md")
    # a file's name is kept to letters, digits, '.', '_' and '-'
    assert files.table_path.name == "correlation_stats-digits+my_features_v2.md"
    assert "my_features_v2-dendrogram.png" in names(files)
    image = CorrelationConfig(datasets=("cifar100", "digits"), backbone=backbone_label(DataOptions(depth=18)))
    assert image.table_path.name == "correlation_stats-cifar100-r18+digits.md"
    assert "cifar100-r18-class-correlation.pdf" in names(image) and "digits-dendrogram.png" in names(image)
    random = CorrelationConfig(datasets=("cifar100",), backbone=backbone_label(DataOptions(weights="none")))
    assert random.table_path.name == "correlation_stats-cifar100-r34-random.md"
    vit = CorrelationConfig(datasets=("cifar100",), backbone=backbone_label(DataOptions(arch="vit_b_16")))
    assert vit.table_path.name == "correlation_stats-cifar100-vit_b_16.md"
    # different commands never share a table
    tables = {c.table_path for c in (one, two, files, image, random, CorrelationConfig(datasets=("synthetic",)))}
    assert len(tables) == 6 and vit.table_path not in tables


def test_figure_names_carry_the_sample_settings_where_they_matter():
    base = set(names(CorrelationConfig()))
    assert len(base) == 1 + 4 * 2
    assert {
        "digits-class-correlation.png",
        "digits-dendrogram.pdf",
        "digits-gram-per-class20-seed0.png",
        "digits-gram-spectrum-per-class20-seed0.pdf",
    } <= base
    for other in (CorrelationConfig(per_class=10), CorrelationConfig(seed=7)):
        changed = base ^ set(names(other))
        # only the sampled figures change name; M and its dendrogram do not depend on the sample
        assert changed and all("-gram-" in name for name in changed)


def test_a_table_over_many_inputs_keeps_a_short_distinct_name():
    many = CorrelationConfig(feature_files=tuple(Path(f"features_from_backbone_{i:02d}.npz") for i in range(12)))
    fewer = CorrelationConfig(feature_files=many.feature_files[:11])
    name = many.table_path.name
    assert len(name) <= feature_correlation_map.MAX_TABLE_NAME + 3
    assert re.fullmatch(
        r"correlation_stats-features_from_backbone_00\+features_from_backbone_01\+"
        r"features_from_backbone_02\+9-more-[0-9a-f]{8}\.md",
        name,
    ), name
    assert fewer.table_path != many.table_path


def test_replaced_files_are_those_with_other_content(tmp_path):
    same, other, new = tmp_path / "same.png", tmp_path / "other.png", tmp_path / "new.png"
    same.write_bytes(b"abc")
    other.write_bytes(b"abd")
    files = {same: b"abc", other: b"abc", new: b"abc"}
    assert feature_correlation_map.replaced_files(files) == [other]


# -- figure groups --------------------------------------------------------------------------------


def small_figure(title: str) -> Figure:
    figure = Figure(figsize=(2, 1.5))
    ax = figure.add_subplot()
    ax.plot([0, 1, 2], [1, 0, 1])
    ax.set_title(title)
    return figure


def test_save_figure_writes_png_and_pdf_reproducibly(tmp_path):
    paths = figure_io.save_figure(small_figure("a"), tmp_path / "a")
    assert paths == [tmp_path / "a.png", tmp_path / "a.pdf"]
    png, pdf = (path.read_bytes() for path in paths)
    assert png.startswith(b"\x89PNG") and pdf.startswith(b"%PDF") and b"CreationDate" not in pdf
    assert figure_io.render(small_figure("a")) == {"png": png, "pdf": pdf}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf", "a.png"]


def test_both_formats_are_cropped_to_the_same_drawing(tmp_path):
    from PIL import Image

    figure = small_figure("a title wider than the axes, so the crop must grow")
    rendered = figure_io.render(figure)
    width, height = Image.open(__import__("io").BytesIO(rendered["png"])).size
    box = re.search(rb"/MediaBox \[([^\]]*)\]", rendered["pdf"]).group(1).split()
    pdf_inches = float(box[2]) / 72, float(box[3]) / 72
    # each format is cropped by its own renderer, whose text extents differ by a few pixels
    np.testing.assert_allclose(pdf_inches, (width / 150, height / 150), atol=0.05)
    assert width / 150 > 2.2  # wider than the 2-inch figure: the title is inside the crop
    assert (figure.dpi, type(figure.canvas).__name__) == (100, "FigureCanvasBase")  # left as it was


def test_save_figures_writes_everything_or_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"earlier result")
    figures = {out / "a": small_figure("a"), out / "b": small_figure("b")}

    class Broken(Figure):
        def savefig(self, *args, **kwargs):
            raise RuntimeError("cannot render")

    with pytest.raises(RuntimeError):  # a figure that fails to render: nothing is opened
        figure_io.save_figures({**figures, out / "c": Broken()}, {out / "t.md": "table\n"})
    assert sorted(p.name for p in out.iterdir()) == ["b.png"]
    files = {}
    for stem, figure in figures.items():
        files.update(figure_io.figure_files(figure, stem))
    files[out / "t.md"] = b"table\n"
    calls = []
    real_write = Path.write_bytes

    def disk_fills(path, data):  # the third file's write finds the disk full
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "write_bytes", disk_fills)
        with pytest.raises(OSError) as caught:
            figure_io.write_files(files)
    assert caught.value.filename == str(out / "b.png")  # the target's name, not the temporary file's
    assert sorted(p.name for p in out.iterdir()) == ["b.png"] and (out / "b.png").read_bytes() == b"earlier result"
    written = figure_io.save_figures(figures, {out / "t.md": "table\n"})
    assert sorted(p.name for p in out.iterdir()) == ["a.pdf", "a.png", "b.pdf", "b.png", "t.md"]
    assert [(p, p.read_bytes()) for p in written] == list(files.items())


def test_save_figures_under_a_refusing_folder_leaves_nothing(tmp_path):
    with os_refusal(tmp_path, errno.EROFS), pytest.raises(OSError):
        figure_io.save_figures({tmp_path / "a": small_figure("a")}, {tmp_path / "t.md": "x"})
    assert list(tmp_path.iterdir()) == []


# -- the command ----------------------------------------------------------------------------------


@pytest.mark.slow  # the whole command on two inputs with its figures: 3 s
def test_cli_writes_one_table_and_figures_per_input(tmp_path, capsys):
    data = save_planted(tmp_path / "planted.npz")
    tiny = make_synthetic(
        SyntheticConfig(num_superclasses=1, classes_per_super=2, dim=4, train_per_class=3, test_per_class=1)
    )
    np.savez(
        tmp_path / "two classes.npz",
        train_features=tiny.train_features,
        train_labels=tiny.train_labels,
        test_features=tiny.test_features,
        test_labels=tiny.test_labels,
    )
    out = tmp_path / "reports"
    argv = [
        "--features",
        str(tmp_path / "planted.npz"),
        str(tmp_path / "two classes.npz"),
        "--per-class",
        "4",
        "--out",
        str(out),
    ]
    assert feature_correlation_map.main(argv) == 0
    printed, progress = capsys.readouterr()
    table = (out / "correlation_stats-planted+two_classes.md").read_text()
    assert table.strip() in printed
    lines = table.strip().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| planted |") and lines[3].startswith("| two classes |")
    cells = [cell.strip() for cell in lines[2].strip("|").split("|")]
    expected = brute_force_stats(data.train_features.astype(np.float64), data.train_labels, np.array(data.superclasses))
    assert cells[1:5] == ["6", "48", "16", "2"]
    np.testing.assert_allclose([float(c) for c in cells[5:]], expected, atol=5e-5)
    expected_files = {"correlation_stats-planted+two_classes.md"}
    for label in ("planted", "two_classes"):
        for figure in ("class-correlation", "dendrogram", "gram-per-class4-seed0", "gram-spectrum-per-class4-seed0"):
            expected_files |= {f"{label}-{figure}.png", f"{label}-{figure}.pdf"}
    assert {p.name for p in out.iterdir()} == expected_files  # and no temporary file
    assert all((out / name).stat().st_size > 1000 for name in expected_files if not name.endswith(".md"))
    assert "wrote" in printed and "replaced" not in printed
    # stderr is not a terminal here: one line per input and phase, with the elapsed time
    assert re.findall(
        r"^\[ *\d+\.\d s\] (\d/2) (inputs loaded|datasets analysed): (\S+)", progress, flags=re.MULTILINE
    ) == [
        ("1/2", "inputs loaded", "planted"),
        ("2/2", "inputs loaded", "two_classes"),
        ("1/2", "datasets analysed", "planted"),
        ("2/2", "datasets analysed", "two_classes"),
    ]
