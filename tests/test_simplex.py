"""Softmax simplex: the projection, the class reduction, runs from flags or folders, the figure and the errors."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest

import plot_softmax_simplex
import train_linear
from analysis.simplex import default_classes, parse_classes, polygon_corners, project, reduced_softmax
from utils.errors import UserError

TRAIN = ["-d", "synthetic", "--epochs", "2", "--seed", "0", "--ctype", "sym"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A teacher, student 1 and the PLL student on synthetic data at η = 0.4 (seconds on a CPU)."""
    root = tmp_path_factory.mktemp("simplex")
    assert (
        train_linear.main(
            [*TRAIN, "--rounds", "1", "--corruption", "0.4", "-c", str(root / "ck"), "--csv", str(root / "r.csv")]
        )
        == 0
    )
    return root


def plot(root: Path, *args: str) -> int:
    return plot_softmax_simplex.main(
        ["-d", "synthetic", "--ctype", "sym", "-c", str(root / "ck"), "--out", str(root / "out"), *args]
    )


@pytest.mark.parametrize("k", [2, 3, 4, 5, 6])
def test_projection_maps_one_hot_to_corners_and_uniform_to_the_centre(k):
    corners = polygon_corners(k)
    np.testing.assert_allclose(project(np.eye(k)), corners, atol=1e-12)
    np.testing.assert_allclose(project(np.full((1, k), 1 / k)), [[0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(corners, axis=1), 1.0)
    sides = np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1)
    np.testing.assert_allclose(sides, sides[0])  # a regular polygon


def test_triangle_points_up_and_square_stands_on_a_side():
    triangle = polygon_corners(3)
    np.testing.assert_allclose(triangle[0], [0.0, 1.0], atol=1e-12)
    square = polygon_corners(4)
    np.testing.assert_allclose(np.abs(square), np.sqrt(0.5), atol=1e-12)


def test_reduced_softmax_is_the_full_softmax_renormalised():
    logits = np.random.default_rng(0).normal(size=(20, 7)) * 5
    full = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    classes = [4, 0, 6]
    expected = full[:, classes] / full[:, classes].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(reduced_softmax(logits, classes), expected, atol=1e-12)
    np.testing.assert_allclose(reduced_softmax(np.array([[1000.0, 0.0, 1000.0]]), [0, 2]), [[0.5, 0.5]])


def test_default_and_named_classes():
    labels = np.array([0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4])  # counts 1, 2, 3, 2, 3
    assert default_classes(labels, 5) == [1, 2, 3, 4]
    assert default_classes(np.repeat(np.arange(6), 3), 6) == [0, 1, 2, 3]  # ties go to the lower index
    names = ("cat", "dog", "7", "bird")
    assert parse_classes(["dog", "0", "bird"], names) == [1, 0, 3]
    assert parse_classes(["7", "1"], names) == [2, 1]  # "7" is a name, "1" an index
    for bad in (["cow", "dog"], ["4", "1"], ["dog", "1"], ["cat"]):
        with pytest.raises(UserError):
            parse_classes(bad, names)


def test_plot_from_flags_writes_png_and_pdf_with_every_stage(trained, capsys):
    assert plot(trained) == 0
    out = capsys.readouterr().out
    for stage in ("teacher", "student 1", "PLL"):
        assert f"{stage} synthetic-planted-sym-eta0.4-seed0-" in out
    for fmt in ("png", "pdf"):
        path = trained / "out" / f"simplex-synthetic_sym_seed0_eta0.4_ep2_best_classes-0-1-2-3.{fmt}"
        assert path.is_file() and path.stat().st_size > 5000, path


def test_plot_from_run_folders_with_three_classes_and_last_checkpoints(trained, capsys):
    folders = sorted(str(p) for p in (trained / "ck").iterdir() if not p.name.startswith("."))
    assert (
        plot_softmax_simplex.main(
            [
                "-d",
                "synthetic",
                "--runs",
                *folders,
                "--classes",
                "s1c0",
                "4",
                "5",
                "--which",
                "last",
                "--out",
                str(trained / "out"),
            ]
        )
        == 0
    )
    assert "PLL" in capsys.readouterr().out
    for fmt in ("png", "pdf"):
        assert (trained / "out" / f"simplex-synthetic_sym_seed0_eta0.4_last_classes-3-4-5.{fmt}").stat().st_size > 5000


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_unknown_class_is_one_line_exit_2(trained, capsys):
    assert plot(trained, "--classes", "0", "nosuch") == 2
    assert "unknown class 'nosuch'" in one_line_error(capsys)


def test_runs_with_other_settings_are_named_not_used(trained, capsys):
    assert plot(trained, "--epochs", "3") == 1
    err = one_line_error(capsys)
    assert "with --epochs 3 (runs there have --ctype sym, --epochs 2" in err and "--epochs 3" in err


def test_too_many_classes_is_one_line_exit_2(trained, capsys):
    assert plot(trained, "--classes", *map(str, range(11))) == 2
    assert "2 to 10 classes" in one_line_error(capsys)


def test_runs_of_other_features_are_not_used(trained, capsys):
    assert (
        plot_softmax_simplex.main(
            ["-d", "digits", "--ctype", "sym", "-c", str(trained / "ck"), "--out", str(trained / "out")]
        )
        == 1
    )
    assert "no teacher run" in one_line_error(capsys)


def test_missing_checkpoint_names_the_command_that_trains_it(tmp_path, capsys, monkeypatch):
    args = [
        "-d",
        "synthetic",
        "--ctype",
        "sym",
        "--corruption",
        "0.8",
        "--epochs",
        "2",
        "-c",
        str(tmp_path / "ck"),
        "--out",
        str(tmp_path / "out"),
    ]
    assert plot_softmax_simplex.main(args) == 1
    err = one_line_error(capsys)
    assert "no teacher run for these features, ctype sym and seed 0" in err
    command = err.split("train the chain with: ", 1)[1].strip()
    assert command.startswith("python3 train_linear.py -d synthetic --ctype sym --corruption 0.8 --seed 0 --epochs 2")
    # The named command makes exactly what was missing.
    monkeypatch.chdir(tmp_path)
    assert train_linear.main([*shlex.split(command)[2:], "--rounds", "0"]) == 0
    capsys.readouterr()
    assert plot_softmax_simplex.main(args) == 0
    assert "η=0.8 seed 0: teacher" in capsys.readouterr().out


def test_not_a_run_folder_is_one_line_exit_2(tmp_path, capsys):
    assert plot_softmax_simplex.main(["-d", "synthetic", "--runs", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "is not a run folder (it has no run.json)" in one_line_error(capsys)


def test_the_store_is_consulted_before_any_feature_is_loaded_or_downloaded(tmp_path, capsys, monkeypatch):
    import analysis.cli_support

    def no_download(*args, **kwargs):
        raise AssertionError("features were loaded (or downloaded) before the store was consulted")

    monkeypatch.setattr(analysis.cli_support, "load_feature_set", no_download)
    code = plot_softmax_simplex.main(["-d", "cifar100", "-c", str(tmp_path / "ck"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "(none of cifar100 in the store); train the chain with: python3 train_linear.py -d cifar100" in err
    assert not (tmp_path / "out").exists()
