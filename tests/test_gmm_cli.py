"""gmm_distill.py end to end: every subcommand in-process (table, JSON, file, plot) and bad input."""

from __future__ import annotations

import json

import pytest

from gmm_distill import main
from tests.conftest import run_script

PNG = b"\x89PNG"
QUICK = ["--samples", "1024", "--search-samples", "512"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_theory_prints_json_writes_the_document_and_a_figure(capsys, tmp_path):
    out, figure = tmp_path / "theory.json", tmp_path / "theory.png"
    code, stdout, _ = run(capsys, "theory", "--alpha", "1", "2", "--stages", "2", "--lambdas", "0.5", "0.5",
                          "--betas", "2", "--labels", "hard", "soft", "--samples", "2048", "--json",
                          "--out", str(out), "--plot", str(figure))
    assert code == 0
    printed = json.loads(stdout)
    assert printed == json.loads(out.read_text())
    rows = printed["rows"]
    assert len(rows) == 2 * 2 * 2  # α × labels × stages
    assert {row["labels"] for row in rows} == {"hard", "soft"}
    assert all(0 < row["error"] < 0.5 and row["iterations"] >= 1 for row in rows)
    assert printed["config"]["lambdas"] == [0.5, 0.5] and "provenance" in printed
    assert figure.read_bytes().startswith(PNG)
    # same seed, same numbers
    code, again, _ = run(capsys, "theory", "--alpha", "1", "2", "--stages", "2", "--lambdas", "0.5", "0.5",
                         "--betas", "2", "--labels", "hard", "soft", "--samples", "2048", "--json")
    assert json.loads(again)["rows"] == rows


def test_simulate_prints_a_table_with_theory_and_z(capsys, tmp_path):
    figure = tmp_path / "sim.svg"
    code, stdout, _ = run(capsys, "simulate", "--alpha", "1.5", "--stages", "2", "--lambdas", "0.5", "0.5",
                          "--labels", "hard", "--loss", "mse", "--N", "100", "--trials", "3",
                          "--samples", "2048", "--plot", str(figure))
    assert code == 0
    header, *lines = stdout.strip().splitlines()
    assert header.split()[:3] == ["labels", "alpha", "stage"] and "z" in header.split()
    assert len(lines) == 2
    assert figure.read_text().lstrip().startswith("<?xml")


def test_simulate_can_tune_on_a_validation_split(capsys):
    code, stdout, _ = run(capsys, "simulate", "--alpha", "2", "--stages", "2", "--labels", "soft", "--loss", "mse",
                          "--N", "60", "--trials", "2", "--validation", "0.5", "--grid-points", "3", "--json")
    assert code == 0
    rows = json.loads(stdout)["rows"]
    assert [row["stage"] for row in rows] == ["1", "2", "early-stopped"]
    assert rows[-1]["mean_stages"] in (1.0, 1.5, 2.0)
    assert all(row["validation"] == 60 for row in rows)  # ⌈0.5·M⌉ extra samples, M = 120


def test_tune_reports_optima_bounds_and_the_stage_count(capsys, tmp_path):
    figure = tmp_path / "tune.png"
    code, stdout, _ = run(capsys, "tune", "--alpha", "1.5", "--stages", "2", "--labels", "hard", *QUICK,
                          "--N", "80", "--trials", "2", "--json", "--plot", str(figure))
    assert code == 0
    document = json.loads(stdout)
    rows, best = document["rows"], document["best_stages"]
    assert [row["stages"] for row in rows] == [1, 2]
    assert all("simulation_error" in row for row in rows)
    assert rows[0]["at_bounds"] == ["lambda_1 at upper bound 1000"]
    assert best[0]["best_stages"] in (1, 2) and best[0]["alpha"] == 1.5
    assert figure.read_bytes().startswith(PNG)


def test_real_features_on_digits(capsys, tmp_path):
    figure = tmp_path / "real.png"
    code, stdout, _ = run(capsys, "real", "--dataset", "digits", "--classes", "3", "8", "--M", "60",
                          "--trials", "2", "--grid-points", "3", "--loss", "mse", "--plot", str(figure))
    assert code == 0
    lines = stdout.strip().splitlines()[1:]
    assert len(lines) == 3
    for line, model in zip(lines, ("0-SD", "1-SD hard", "1-SD soft")):
        assert line.startswith("digits 3 vs 8") and model in line
    assert figure.read_bytes().startswith(PNG)


BAD = [
    (["theory", "--delta", "0"], "--delta must be > 0"),
    (["theory", "--delta", "nan"], "--delta must be > 0"),
    (["theory", "--theta", "0.5"], "--theta must be in [0, 0.5)"),
    (["theory", "--theta", "-0.1"], "--theta must be in [0, 0.5)"),
    (["theory", "--rho", "1"], "--rho must be in (0, 1)"),
    (["theory", "--rho", "0"], "--rho must be in (0, 1)"),
    (["theory", "--alpha", "1", "-2"], "--alpha must be > 0"),
    (["theory", "--alpha", "0"], "--alpha must be > 0"),
    (["theory", "--stages", "2", "--lambdas", "1", "0"], "--lambdas must all be > 0"),
    (["theory", "--stages", "2", "--betas", "-1"], "--betas must all be > 0"),
    (["theory", "--stages", "3", "--lambdas", "1", "1"], "--lambdas needs one value per stage"),
    (["theory", "--stages", "2", "--betas", "1", "2"], "--betas needs one value per pseudo-labelled stage"),
    (["theory", "--stages", "0"], "--stages must be between 1 and 16"),
    (["theory", "--damping", "1"], "--damping must be in [0, 1)"),
    (["theory", "--labels", "medium"], "invalid choice"),
    (["simulate", "--N", "1"], "--N must be at least 2"),
    (["tune", "--lambda-range", "10", "1"], "--lambda-range needs 0 < LOW < HIGH"),
    (["real", "--dataset", "digits", "--classes", "3", "3"], "two different class indices"),
    (["real", "--dataset", "digits", "--classes", "3", "8", "--M", "400"], "use --M"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(argv) for argv, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, message, capsys, tmp_path):
    try:
        code = main([*argv, "--out", str(tmp_path / "never.json"), "--plot", str(tmp_path / "never.png")])
    except SystemExit as exit:  # argparse's own errors exit from parse_args
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_no_convergence_is_one_line_exit_1_and_writes_nothing(capsys, tmp_path):
    code = main(["theory", "--max-iter", "1", "--out", str(tmp_path / "never.json"), "--plot", str(tmp_path / "never.png")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "no convergence after 1 iterations" in err
    assert list(tmp_path.iterdir()) == []


def test_bad_input_in_a_subprocess_is_one_line_without_traceback():
    result = run_script("gmm_distill.py", "theory", "--rho", "1.5")
    assert result.returncode == 2
    assert result.stderr == "error: --rho must be in (0, 1), got 1.5\n"
    assert result.stdout == ""


def test_validation_and_benchmark_scripts_print_their_rows(capsys):
    from benchmarks.bench_gmm import main as bench
    from scripts.validate_gmm import main as validate

    assert validate(["--N", "60", "80", "--trials", "2", "--samples", "256", "--configs", "bce-soft-fix",
                     "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert len(document["rows"]) == 2 * 3 and len(document["summary"]) == 2
    assert bench(["--repeats", "1", "--skip-sweep", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [row["benchmark"] for row in rows] == ["BCE theory point, T=3, soft", "BCE theory point, T=3, hard"]
    assert all(row["wall_s"] > 0 and row["draws"] == 16384 for row in rows)
