"""``numerical_solving.py`` end to end: flags and their old spellings, saved files, Phi stored once,
residuals recomputed from the files alone, threads, progress, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numerical_solving
from gram_theory import storage
from gram_theory.config import Config, planned_paths, run_files
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--k", "3", "--n", "15", "--rounds", "3", "--wd", "1e-3"]


def _run(out: Path, *extra: str) -> storage.SavedRun:
    assert numerical_solving.main([*SMALL, "--out", str(out), *extra]) == 0
    return storage.load_run(run_files(numerical_solving.parse_config([*SMALL, "--out", str(out), *extra])).arrays)


def test_every_saved_round_meets_tol_recomputed_from_the_files_alone(tmp_path, capsys):
    run = _run(tmp_path)
    arrays, record = run.arrays, run.record
    n, solves = 45, 4
    assert run.gram.shape == (n, n) and arrays["outputs"].shape == (solves + 1, n, 3)
    for name, shape in [
        ("labels", (n,)),
        ("given", (n,)),
        ("residual", (solves + 1,)),
        ("accuracy", (solves + 1, 3)),
        ("time", (solves + 1,)),
        ("converged", (solves + 1,)),
    ]:
        assert arrays[name].shape == shape, name
    np.testing.assert_array_equal(arrays["outputs"][0], np.eye(3)[arrays["given"]])
    assert arrays["residual"][0] == 0 and arrays["converged"].all()
    recomputed = storage.recompute_residuals(tmp_path / f"{run_files(numerical_solving.parse_config(SMALL)).stem}.json")
    assert np.all(recomputed[1:] <= 1e-10)
    np.testing.assert_array_equal(recomputed, arrays["residual"])
    assert record["config"]["tol"] == 1e-10 and record["config"]["approx"] is False
    assert record["stages"] == ["given labels", "teacher", "student 1", "student 2", "student 3"]
    out = capsys.readouterr().out
    assert "teacher" in out and "student 3" in out and f"saved {tmp_path}" in out


def test_file_names_are_short_and_every_run_file_appears(tmp_path):
    config = numerical_solving.parse_config([*SMALL, "--corruption", "0.1", "0.5", "--out", str(tmp_path)])
    assert numerical_solving.main([*SMALL, "--corruption", "0.1", "0.5", "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([p.name for p in planned_paths(config)] + [run_files(config).phi.name])
    assert all("," not in name and len(name) <= 40 for name in names), names


def test_phi_is_stored_once_and_shared_by_the_runs_that_use_it(tmp_path):
    first = _run(tmp_path, "--wd", "1e-3")
    second = _run(tmp_path, "--wd", "1e-2", "--corruption", "0", "0.5")
    other_seed = _run(tmp_path, "--seed", "4")
    phis = sorted(tmp_path.glob("phi-*.npy"))
    assert len(phis) == 2 and len(list(tmp_path.glob("*.npz"))) == 3
    assert first.record["phi"] == second.record["phi"] != other_seed.record["phi"]
    np.testing.assert_array_equal(first.gram, second.gram)
    assert first.record["phi"]["sha256"] == storage.phi_digest(first.gram)
    for row in second.arrays["outputs"]:
        assert row.shape == (2, 5, 45, 3)


def test_a_changed_phi_is_refused_when_a_run_is_read(tmp_path):
    run = _run(tmp_path)
    phi = tmp_path / run.record["phi"]["file"]
    gram = np.load(phi)
    gram[0, 1] += 1e-12
    np.save(phi, gram)
    with pytest.raises(UserError, match=r"phi-.*\.npy does not match the SHA-256 its run recorded"):
        storage.recompute_residuals(next(tmp_path.glob("newton-*.json")))


def test_sweep_prints_a_stage_by_corruption_table(tmp_path, capsys):
    run = _run(tmp_path, "--corruption", "0", "0.5", "--wd", "1e-3", "1e-2")
    arrays = run.arrays
    assert arrays["outputs"].shape == (2, 2, 5, 45, 3) and arrays["given"].shape == (2, 45)
    np.testing.assert_array_equal(arrays["corruption"], [0, 0.5])
    recomputed = storage.recompute_residuals(next(tmp_path.glob("*.json")))
    assert recomputed.shape == (2, 2, 5) and np.all(recomputed[..., 1:] <= 1e-10)
    np.testing.assert_array_equal(recomputed, arrays["residual"])
    assert np.all(arrays["accuracy"][:, 0, 1:, 2] == 100.0)
    captured = capsys.readouterr()
    assert "eta=0" in captured.out and "eta=0.5" in captured.out and "wd = 0.01" in captured.out
    assert "\nteacher " in captured.out and "\nstudent 3 " in captured.out
    assert run.record["sweep"] is True
    # Progress without a terminal: one line per solve and one per sweep point, with the elapsed time.
    lines = captured.err.splitlines()
    assert sum("solves:" in line for line in lines) == 4 * 4 and sum("sweep points:" in line for line in lines) == 4
    assert all(line.startswith("[") and " s] " in line for line in lines)


def test_same_seed_and_threads_give_the_same_numbers_and_the_count_is_recorded(tmp_path):
    first = _run(tmp_path / "a", "--seed", "3", "--threads", "1")
    second = _run(tmp_path / "b", "--seed", "3", "--threads", "1")
    two = _run(tmp_path / "c", "--seed", "3", "--threads", "2")
    np.testing.assert_array_equal(first.arrays["outputs"], second.arrays["outputs"])
    np.testing.assert_array_equal(first.gram, second.gram)
    assert first.record["provenance"]["threads"] == 1 and two.record["provenance"]["threads"] == 2
    assert first.record["config"]["threads"] == 1
    # The count is part of the run's identity: BLAS may sum in another order.
    assert sorted(p.name for p in (tmp_path / "a").glob("*.npz")) != sorted(
        p.name for p in (tmp_path / "c").glob("*.npz")
    )
    np.testing.assert_allclose(two.arrays["outputs"], first.arrays["outputs"], atol=1e-9)


AUTHORS = [  # the authors' README table, every flag with a value, against the canonical spelling
    (
        [
            "--k",
            "3",
            "--n",
            "7",
            "--lbd",
            "1e-4",
            "--c",
            "0.5",
            "--d",
            "0.2",
            "--eta",
            "0.3",
            "--epsilon",
            "0.1",
            "--max_dist",
            "5",
            "--max_iter",
            "77",
            "--approx",
            "True",
        ],
        [
            "--k",
            "3",
            "--n",
            "7",
            "--wd",
            "1e-4",
            "--c",
            "0.5",
            "--d",
            "0.2",
            "--corruption",
            "0.3",
            "--epsilon",
            "0.1",
            "--rounds",
            "4",
            "--max-iter",
            "77",
            "--approx",
        ],
    ),
    (
        ["--lbd", "1e-5", "2e-5", "--eta", "0.1", "0.2"],
        ["--weight-decay", "1e-5", "2e-5", "--corruption", "0.1", "0.2"],
    ),
    (["--max_dist", "10"], []),
    (["--max-dist", "1"], ["--rounds", "0"]),
    (["--manualSeed", "5"], ["--seed", "5"]),
    (["--approx", "False"], []),
]


@pytest.mark.parametrize(("old", "new"), AUTHORS)
def test_the_authors_spellings_mean_what_they_meant(old, new):
    assert numerical_solving.parse_config(old) == numerical_solving.parse_config(new)


def test_defaults_are_the_authors():
    config = numerical_solving.parse_config([])
    assert (config.k, config.n, config.wd, config.c, config.d, config.corruption, config.epsilon) == (
        4,
        500,
        (1e-5,),
        0.4,
        0.1,
        (0.5,),
        0.05,
    )
    assert (config.solves, config.max_iter, config.approx) == (10, 100_000, False)
    assert config == Config()
    help_text = numerical_solving.build_parser().format_help()
    for shown in (
        "(default: 4)",
        "(default: 1e-05)",
        "(default: 9)",
        "default 10",
        "(default: 100000)",
        "(default 0)",
        "(default: outputs)",
        "(default: 1)",
    ):
        assert shown in help_text, shown


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ([], False),
        (["--approx"], True),
        (["--approx", "True"], True),
        (["--approx", "False"], False),
        (["--approx", "0"], False),
    ],
)
def test_approx_is_a_real_boolean(flag, expected):
    assert numerical_solving.parse_config(flag).approx is expected


def test_approx_rounds_solve_the_linear_map(tmp_path):
    run = _run(tmp_path, "--approx")
    assert run.record["map"] == "linear"
    assert np.all(storage.recompute_residuals(next(tmp_path.glob("approx-*.json")))[1:] <= 1e-10)
    from gram_theory.fixed_point import residual

    outputs = run.arrays["outputs"]
    assert max(residual(run.gram, outputs[t - 1], outputs[t], 1e-3) for t in range(1, 5)) > 1e-6


def test_adam_rounds_are_saved_unconverged(tmp_path, capsys):
    run = _run(tmp_path, "--method", "adam", "--max_iter", "20", "--rounds", "1")
    assert not run.arrays["converged"][1:].any()
    np.testing.assert_array_equal(
        storage.recompute_residuals(next(tmp_path.glob("adam-*.json"))), run.arrays["residual"]
    )
    assert "2 of 2 solves missed tol" in capsys.readouterr().out


def test_ctrl_c_between_two_files_of_a_run_leaves_none(tmp_path, capsys, monkeypatch):
    """The run's arrays and record are written, Phi is being written: a Ctrl-C leaves no file at all."""

    def interrupted(*args, **kwargs):
        assert any(tmp_path.glob("out/.newton-*.npz.*.tmp")) and any(tmp_path.glob("out/.newton-*.json.*.tmp"))
        raise KeyboardInterrupt

    monkeypatch.setattr(storage.np, "save", interrupted)
    assert numerical_solving.main([*SMALL, "--out", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "interrupted"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_plots_are_written_with_the_run(tmp_path):
    run = _run(tmp_path, "--corruption", "0.2", "0.6", "--rounds", "1", "--plots")
    figures = sorted(tmp_path.glob("*.png"))
    counts = {kind: sum(f"-{kind}-" in p.name for p in figures) for kind in ("accuracy", "spectrum", "simplex")}
    assert counts == {"accuracy": 1, "spectrum": 2, "simplex": 2}
    assert all(p.stat().st_size > 1000 for p in figures)
    assert sorted(run.record["files"][2:]) == [p.name for p in figures]


@pytest.mark.parametrize("extra", [[], ["--approx"]])
def test_the_wd_an_error_suggests_runs(tmp_path, capsys, extra):
    argv = ["--k", "3", "--n", "15", "--rounds", "2", *extra, "--out", str(tmp_path / "out")]
    assert numerical_solving.main([*argv, "--wd", "1e-20"]) == 2
    err = capsys.readouterr().err
    suggested = err.split("the smallest --wd that works here is ")[1].split()[0]
    assert not (tmp_path / "out").exists()
    assert numerical_solving.main([*argv, "--wd", suggested]) == 0
    assert np.all(storage.recompute_residuals(next((tmp_path / "out").glob("*.npz")))[1:] <= 1e-10)


def test_unconverged_exact_round_is_an_error_and_nothing_is_saved(tmp_path, capsys):
    assert numerical_solving.main([*SMALL, "--out", str(tmp_path / "out"), "--max-iter", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: teacher (wd=0.001, corruption=0.5)") and "--max-iter 1 " in err[-1]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra", [[], pytest.param(["--plots"], marks=pytest.mark.slow)], ids=["solve", "plots"])
def test_the_solver_never_imports_torch(tmp_path, extra):
    argv = ["--k", "2", "--n", "5", "--rounds", "0", *extra, "--out", str(tmp_path)]
    code = (
        f"import sys, numerical_solving; assert numerical_solving.main({argv!r}) == 0; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'training')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_bad_input_from_a_shell_is_one_line_and_help_is_light(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "numerical_solving.py"), "--c", "0.1", "--d", "0.4", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: --c must be greater than --d (got c=0.1, d=0.4)"]
    assert result.stdout == ""
    code = (
        "import sys, numerical_solving; numerical_solving.build_parser().format_help(); "
        "print(sorted(m for m in ('numpy', 'scipy', 'matplotlib') if m in sys.modules))"
    )
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert light.stdout.strip() == "[]", light.stderr
