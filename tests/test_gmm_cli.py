"""gmm_distill.py end to end: every subcommand in-process (table, JSON, output folder, figures), the flag
conventions (aliases, no abbreviations), progress lines, the scoped thread count, and the helper scripts.

Bad input and refused outputs are the fault suite's (tests/test_faults_gmm_distill.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from threadpoolctl import threadpool_info

from gmm_distill import build_parser, config_from_args, main
from tests.conftest import run_script

PNG, PDF = b"\x89PNG", b"%PDF"
QUICK = ["--samples", "1024", "--search-samples", "512"]
THEORY = [
    "theory",
    "--alpha",
    "1",
    "2",
    "--rounds",
    "1",
    "--lambdas",
    "0.5",
    "0.5",
    "--betas",
    "2",
    "--labels",
    "hard",
    "soft",
    "--samples",
    "2048",
]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def written(folder: Path) -> dict[str, Path]:
    return {path.suffix: path for path in folder.iterdir()}


def test_theory_writes_its_document_and_figures_together_and_prints_the_same_json(capsys, tmp_path):
    code, stdout, stderr = run(capsys, *THEORY, "--json", "--plot", "--out", str(tmp_path))
    assert code == 0
    files = written(tmp_path)
    assert sorted(files) == [".json", ".pdf", ".png"]
    stem = files[".json"].stem
    assert re.fullmatch(r"theory-[0-9a-f]{10}", stem) and {p.stem for p in files.values()} == {stem}
    printed = json.loads(stdout)
    assert printed == json.loads(files[".json"].read_text())
    assert files[".png"].read_bytes().startswith(PNG) and files[".pdf"].read_bytes().startswith(PDF)
    rows = printed["rows"]
    assert len(rows) == 2 * 2 * 2  # α × labels × models
    assert [row["model"] for row in rows[:2]] == ["teacher", "student1"]
    assert {row["labels"] for row in rows} == {"hard", "soft"}
    assert all(0 < row["error"] < 0.5 and row["iterations"] >= 1 for row in rows)
    assert printed["config"]["lambdas"] == [0.5, 0.5] and printed["config"]["stages"] == 2
    assert printed["provenance"]["threads"] == 1  # automatic: one thread for the theory
    # progress when stderr is not a terminal: one line per theory point, then where the result went
    lines = stderr.splitlines()
    assert [line.split("] ")[1].split(":")[0] for line in lines[:4]] == [f"{k}/4 theory points" for k in range(1, 5)]
    assert lines[-1].startswith(f"wrote {files['.json']}")
    # the same settings spelled with the aliases (--stages T = R + 1, --theta, --manualSeed, --max_iter)
    # are the same run: same name, same numbers
    alias = [*THEORY, "--theta", "0.2", "--manualSeed", "0", "--max_iter", "2000", "--json", "--out", str(tmp_path)]
    alias[alias.index("--rounds") : alias.index("--rounds") + 2] = ["--stages", "2"]
    code, again, _ = run(capsys, *alias)
    assert code == 0 and json.loads(again)["rows"] == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files.values())


def test_the_output_name_follows_the_settings():
    def stem(*argv):
        return config_from_args(build_parser().parse_args(list(argv))).digest()

    assert stem("theory") == stem("theory", "--rounds", "1") == stem("theory", "--stages", "2")
    assert stem("theory") != stem("theory", "--seed", "1") != stem("theory", "--corruption", "0.1")
    assert stem("theory") != stem("simulate")


def test_simulate_prints_a_table_with_theory_and_z(capsys, tmp_path):
    code, stdout, stderr = run(
        capsys,
        "simulate",
        "--alpha",
        "1.5",
        "--rounds",
        "1",
        "--lambdas",
        "0.5",
        "0.5",
        "--labels",
        "hard",
        "--loss",
        "mse",
        "--N",
        "100",
        "--trials",
        "3",
        "--samples",
        "2048",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    header, *lines = stdout.strip().splitlines()
    assert header.split()[:3] == ["labels", "alpha", "model"] and "z" in header.split()
    assert [line.split()[2:4] for line in lines] == [["teacher", "100"], ["student", "1"]]
    assert "1/1 simulation points: hard, α=1.5: teacher" in stderr
    assert [p.suffix for p in tmp_path.iterdir()] == [".json"]


def test_simulate_can_tune_on_a_validation_split(capsys, tmp_path):
    code, stdout, _ = run(
        capsys,
        "simulate",
        "--alpha",
        "2",
        "--rounds",
        "1",
        "--labels",
        "soft",
        "--loss",
        "mse",
        "--N",
        "60",
        "--trials",
        "2",
        "--validation",
        "0.5",
        "--grid-points",
        "3",
        "--json",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    rows = json.loads(stdout)["rows"]
    assert [row["model"] for row in rows] == ["teacher", "student1", "early-stopped"]
    assert rows[-1]["mean_rounds"] in (0.0, 0.5, 1.0)
    assert all(row["validation"] == 60 for row in rows)  # ⌈0.5·M⌉ extra samples, M = 120


def test_tune_reports_optima_bounds_and_the_number_of_rounds(capsys, tmp_path):
    code, stdout, stderr = run(
        capsys,
        "tune",
        "--alpha",
        "1.5",
        "--rounds",
        "1",
        "--labels",
        "hard",
        *QUICK,
        "--N",
        "80",
        "--trials",
        "2",
        "--json",
        "--plot",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    document = json.loads(stdout)
    rows, best = document["rows"], document["best"]
    assert [(row["rounds"], row["model"], row["paper"]) for row in rows] == [
        (0, "teacher", "0-SD"),
        (1, "student1", "1-SD"),
    ]
    assert all("simulation_error" in row for row in rows)
    assert rows[0]["at_bounds"] == ["lambda_1 at upper bound 1000"]
    assert best[0]["best_rounds"] in (0, 1) and best[0]["alpha"] == 1.5
    assert best[0]["best_model"] == ("teacher" if best[0]["best_rounds"] == 0 else "student1")
    assert "1/1 tuned points: hard, α=1.5: best" in stderr
    assert sorted(written(tmp_path)) == [".json", ".pdf", ".png"]
    assert document["simulated"] is True and document["config"]["N"] == 80


def test_tune_without_N_runs_the_theory_only_and_says_so(capsys, tmp_path):
    argv = ["tune", "--alpha", "1.5", "--rounds", "0", "--labels", "hard", *QUICK, "--json", "--out", str(tmp_path)]
    code, stdout, _ = run(capsys, *argv)
    assert code == 0
    document = json.loads(stdout)
    assert document["simulated"] is False
    assert "N" not in document["config"] and "trials" not in document["config"]
    assert not any(key in row for row in document["rows"] for key in ("N", "trials", "simulation_error"))
    # the same flags make simulate simulate at its own default dimension
    from gmm_distill import build_parser

    assert build_parser().parse_args(["simulate"]).N == 1000
    assert build_parser().parse_args(["tune"]).N is None


def test_real_features_on_digits_name_the_models_with_the_stage_vocabulary(capsys, tmp_path):
    code, stdout, stderr = run(
        capsys,
        "real",
        "--dataset",
        "digits",
        "--classes",
        "3",
        "8",
        "--M",
        "60",
        "--trials",
        "2",
        "--grid-points",
        "3",
        "--loss",
        "mse",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    header, *lines = stdout.strip().splitlines()
    assert header.split()[:4] == ["data", "model", "labels", "paper"]
    expected = [("teacher", "None", "0-SD"), ("student 1", "hard", "1-SD hard"), ("student 1", "soft", "1-SD soft")]
    for line, (name, labels, paper) in zip(lines, expected, strict=True):
        assert line.startswith(f"digits 3 vs 8  {name}") and f" {labels} " in line and paper in line
    assert stderr.count("trials:") == 2
    assert re.fullmatch(r"real-[0-9a-f]{10}\.json", next(tmp_path.iterdir()).name)


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info()]


def test_the_thread_count_is_scoped_to_the_work_and_recorded(capsys, tmp_path, monkeypatch):
    import gmm.runs

    seen = []
    original = gmm.runs.run_simulate

    def spy(config, progress=False):
        seen.append(_blas_threads())
        return original(config, progress)

    monkeypatch.setattr(gmm.runs, "run_simulate", spy)
    before = _blas_threads()
    code, stdout, _ = run(
        capsys,
        "simulate",
        "--alpha",
        "1",
        "--rounds",
        "0",
        "--loss",
        "mse",
        "--N",
        "40",
        "--trials",
        "2",
        "--samples",
        "256",
        "--threads",
        "1",
        "--json",
        "--out",
        str(tmp_path),
    )
    assert code == 0 and json.loads(stdout)["provenance"]["threads"] == 1
    assert seen and all(count == 1 for count in seen[0])
    assert _blas_threads() == before  # restored after


def test_abbreviations_are_refused(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["theory", "--corr", "0.1"])
    assert exit.value.code == 2 and "unrecognized arguments: --corr" in capsys.readouterr().err


def test_validation_and_benchmark_scripts_follow_the_conventions(capsys):
    from benchmarks.bench_gmm import main as bench
    from scripts.validate_gmm import main as validate

    assert (
        validate(
            [
                "--N",
                "60",
                "80",
                "--trials",
                "2",
                "--samples",
                "256",
                "--configs",
                "bce-soft-fix",
                "--manualSeed",
                "3",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert len(document["rows"]) == 2 * 3 and len(document["summary"]) == 2
    assert [row["model"] for row in document["rows"][:3]] == ["teacher", "student1", "student2"]
    assert document["config"]["seed"] == 3 and document["summary"][0]["threads"] == 1
    assert "2/2 simulations" in captured.err
    assert bench(["--repeats", "1", "--skip-sweep", "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)["rows"]
    assert [row["benchmark"] for row in rows] == [
        "BCE theory point, --rounds 2, soft",
        "BCE theory point, --rounds 2, hard",
    ]
    assert all(row["wall_s"] > 0 and row["draws"] == 16384 for row in rows)
    assert "2/2 benchmarks" in captured.err
    assert validate(["--N", "1"]) == 2 and capsys.readouterr().err == "error: --N must be at least 2, got 1\n"


@pytest.mark.slow
def test_the_command_line_loads_no_numerics_before_main_and_help_is_instant():
    code = (
        "import sys, gmm_distill, scripts.validate_gmm, benchmarks.bench_gmm; "
        "heavy = [m for m in ('numpy', 'scipy', 'matplotlib', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    assert run_script("-c", code).returncode == 0
    result = run_script("gmm_distill.py", "tune", "--help")
    assert result.returncode == 0 and "--rounds R" in result.stdout and "(default: results/gmm)" in result.stdout


@pytest.mark.slow
def test_a_run_in_a_subprocess_writes_into_the_default_folder(tmp_path):
    result = run_script(
        str(Path(__file__).resolve().parents[1] / "gmm_distill.py"), "theory", "--samples", "256", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    (written_file,) = (tmp_path / "results" / "gmm").iterdir()
    assert result.stderr.splitlines()[-1] == f"wrote {Path('results/gmm') / written_file.name}"
    assert result.stdout.splitlines()[0].split()[:3] == ["labels", "alpha", "model"]
