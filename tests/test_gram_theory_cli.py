"""``numerical_solving.py`` end to end: saved files, sweeps, flags and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import numerical_solving
from gram_theory import storage
from gram_theory.fixed_point import residual

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--k", "3", "--n", "15", "--max_dist", "4", "--lbd", "1e-3"]


def _run(tmp_path: Path, *extra: str) -> tuple[dict, dict]:
    assert numerical_solving.main([*SMALL, "--out", str(tmp_path), *extra]) == 0
    (path,) = tmp_path.glob("*.npz")
    return storage.load(path)


def _recomputed(arrays: dict, lbd: float, linear: bool = False) -> np.ndarray:
    outputs = arrays["outputs"]
    return np.array([residual(arrays["gram"], outputs[t - 1], outputs[t], lbd, linear)
                     for t in range(1, outputs.shape[0])])


def test_every_saved_round_meets_tol(tmp_path, capsys):
    arrays, record = _run(tmp_path)
    n, r = 45, 4
    assert arrays["gram"].shape == (n, n) and arrays["outputs"].shape == (r + 1, n, 3)
    for name, shape in [("labels", (n,)), ("given", (n,)), ("residual", (r + 1,)), ("accuracy", (r + 1, 3)),
                        ("time", (r + 1,)), ("converged", (r + 1,))]:
        assert arrays[name].shape == shape, name
    np.testing.assert_array_equal(arrays["outputs"][0], np.eye(3)[arrays["given"]])
    assert arrays["residual"][0] == 0 and arrays["converged"].all()
    recomputed = _recomputed(arrays, 1e-3)
    assert np.all(recomputed <= 1e-10)
    np.testing.assert_array_equal(recomputed, arrays["residual"][1:])
    assert record["config"]["tol"] == 1e-10 and record["config"]["approx"] is False
    out = capsys.readouterr().out
    assert "1 teacher" in out and f"saved {tmp_path}" in out


def test_sweep_stores_the_gram_once_and_prints_a_round_by_eta_table(tmp_path, capsys):
    arrays, record = _run(tmp_path, "--eta", "0", "0.5", "--lbd", "1e-3", "1e-2")
    assert arrays["gram"].shape == (45, 45)
    assert arrays["outputs"].shape == (2, 2, 5, 45, 3) and arrays["given"].shape == (2, 45)
    np.testing.assert_array_equal(arrays["eta"], [0, 0.5])
    for i, lbd in enumerate(arrays["lbd"]):
        for j in range(2):
            point = {"gram": arrays["gram"], "outputs": arrays["outputs"][i, j]}
            assert np.all(_recomputed(point, lbd) <= 1e-10)
    assert np.all(arrays["accuracy"][:, 0, 1:, 2] == 100.0)
    out = capsys.readouterr().out
    assert "eta=0" in out and "eta=0.5" in out and "lbd = 0.01" in out
    assert record["sweep"] is True


def test_same_seed_same_numbers(tmp_path):
    first, _ = _run(tmp_path / "a", "--seed", "3")
    second, _ = _run(tmp_path / "b", "--seed", "3")
    other, _ = _run(tmp_path / "c", "--seed", "4")
    np.testing.assert_array_equal(first["outputs"], second["outputs"])
    np.testing.assert_array_equal(first["gram"], second["gram"])
    assert not np.array_equal(first["gram"], other["gram"])


@pytest.mark.parametrize(("flag", "expected"), [([], False), (["--approx"], True), (["--approx", "True"], True),
                                                (["--approx", "False"], False), (["--approx", "0"], False)])
def test_approx_is_a_real_boolean(flag, expected):
    assert numerical_solving.parse_config(flag).approx is expected


def test_approx_rounds_solve_the_linear_map(tmp_path):
    arrays, record = _run(tmp_path, "--approx")
    assert record["map"] == "linear"
    assert np.all(_recomputed(arrays, 1e-3, linear=True) <= 1e-10)
    assert _recomputed(arrays, 1e-3).max() > 1e-6   # not a fixed point of the softmax map


def test_adam_rounds_are_saved_unconverged(tmp_path, capsys):
    arrays, _ = _run(tmp_path, "--method", "adam", "--max_iter", "20", "--max_dist", "2")
    assert not arrays["converged"][1:].any()
    np.testing.assert_array_equal(_recomputed(arrays, 1e-3), arrays["residual"][1:])
    assert "2 of 2 rounds missed tol" in capsys.readouterr().out


def test_plots_are_written(tmp_path):
    _run(tmp_path, "--eta", "0.2", "0.6", "--max_dist", "2", "--plots")
    figures = list(tmp_path.glob("*.png"))
    counts = {kind: sum(f"_{kind}_" in p.name for p in figures) for kind in ("accuracy", "spectrum", "simplex")}
    assert counts == {"accuracy": 1, "spectrum": 2, "simplex": 2}
    assert all(p.stat().st_size > 1000 for p in figures)


BAD = [
    (["--c", "0.1", "--d", "0.2"], "--c must be greater than --d"),
    (["--c", "0.3", "--d", "0.3"], "--c must be greater than --d"),
    (["--c", "1.0"], "--c must be below 1"),
    (["--d", "-0.1"], "--d must be >= 0"),
    (["--eta", "1.5"], "--eta must lie in [0, 1]"),
    (["--eta", "0.2", "-0.1"], "--eta must lie in [0, 1]"),
    (["--k", "1"], "--k must be at least 2"),
    (["--n", "0"], "--n must be at least 1"),
    (["--lbd", "0"], "--lbd must be positive"),
    (["--lbd", "1e-3", "-1"], "--lbd must be positive"),
    (["--lbd", "nan"], "--lbd must be a finite number"),
    (["--eta", "inf", "0.5"], "--eta must be a finite number"),
    (["--tol", "0"], "--tol must be positive"),
]


@pytest.mark.parametrize(("argv", "message"), BAD)
def test_bad_input_exits_with_one_line(tmp_path, capsys, argv, message):
    assert numerical_solving.main([*argv, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert message in captured.err
    assert not list(tmp_path.iterdir())


def test_unparsable_flag_exits_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        numerical_solving.main(["--k", "four"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_input_from_a_shell_is_one_line_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "numerical_solving.py"), "--c", "0.1", "--d", "0.4",
                             "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --c must be greater than --d (got c=0.1, d=0.4)"]
    assert result.stdout == ""


def test_unconverged_exact_round_is_an_error_and_nothing_is_saved(tmp_path, capsys):
    assert numerical_solving.main([*SMALL, "--out", str(tmp_path), "--tol", "1e-300"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: round 1 (eta=0.5, lbd=0.001)") and "residual" in err
    assert not list(tmp_path.glob("*.npz"))


def test_config_json_sits_beside_the_npz(tmp_path):
    _run(tmp_path, "--eta", "0.3")
    (npz,) = tmp_path.glob("*.npz")
    record = json.loads(npz.with_suffix(".json").read_text())
    assert record["config"]["eta"] == [0.3] and record["config"]["k"] == 3
    assert "eta0.3" in npz.name and "k3" in npz.name and "seed0" in npz.name


def test_the_solver_never_imports_torch(tmp_path):
    argv = ["--k", "2", "--n", "5", "--max_dist", "1", "--plots", "--out", str(tmp_path)]
    code = (f"import sys, numerical_solving; numerical_solving.main({argv!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
