"""report.py on hand-made results CSVs: numbers computed here independently, missing cells, errors, files."""

from __future__ import annotations

import csv
import re
import statistics
from pathlib import Path

import pytest

from analysis.report_outputs import ReportConfig, build_report
from analysis.selection import Filters, PerDataset
from report import build_parser, config_from_args, main

HEADER = ("Dataset", "Depth", "CType", "Corruption", "Seed", "LR", "WD", "Distill", "Train Acc.", "Test Acc.",
          "Final Acc.", "Realized Corruption", "Epochs", "Optimizer", "Last", "Selection", "Run")

# (η, stage) → seed → test accuracy. Holes on purpose: the teacher at η=0.5 lacks seed 2, student 2 at
# η=0.7 lacks seed 2, PLL has no run at η=0.7, student 3 has none at all.
ACCURACY = {
    (0.5, "0"): {0: 80.0, 1: 82.5},
    (0.5, "1"): {0: 81.0, 1: 85.0, 2: 84.0},
    (0.5, "2"): {0: 83.0, 1: 84.5, 2: 86.0},
    (0.5, "p"): {0: 86.0, 1: 83.0, 2: 85.5},
    (0.7, "0"): {0: 50.0, 1: 55.0, 2: 53.0},
    (0.7, "1"): {0: 52.0, 1: 56.0, 2: 58.0},
    (0.7, "2"): {0: 57.5, 1: 54.0},
    (0.7, "4"): {0: 51.0, 1: 51.0, 2: 52.0},
}


def row(dataset="toy", eta=0.5, stage="0", seed=0, acc=50.0, wd=0.01, lr=0.1, last=0, run=None) -> dict:
    return {"Dataset": dataset, "Depth": 34, "CType": "cc", "Corruption": eta, "Seed": seed, "LR": lr, "WD": wd,
            "Distill": stage, "Train Acc.": 99.0, "Test Acc.": acc, "Final Acc.": acc - 1, "Realized Corruption": eta,
            "Epochs": 200, "Optimizer": "sgd", "Last": last, "Selection": "test",
            "Run": run or f"{dataset}-r34-cc-eta{eta:g}-seed{seed}-{stage}-wd{wd:g}-last{last if stage != '0' else ''}"}


def toy_rows(dataset="toy", wd=0.01, offset=0.0) -> list[dict]:
    return [row(dataset, eta, stage, seed, acc + offset, wd=wd)
            for (eta, stage), by_seed in ACCURACY.items() for seed, acc in by_seed.items()]


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


def markdown_table(text: str, title: str) -> dict[str, list[str]]:
    """Row label → cells of the Markdown table under the heading ``### title``."""
    block = text.split(f"### {title}\n", 1)[1].split("\n\n", 2)[1]
    lines = [line for line in block.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return {cells[0]: cells[1:] for cells in rows[2:]}


def expected_cell(values: list[float], signed: bool = False, seeds: int = 3) -> str:
    mean, std = statistics.fmean(values), statistics.pstdev(values)
    text = f"{mean:+.2f} ± {std:.2f}" if signed else f"{mean:.2f} ± {std:.2f}"
    return text + (f" (n={len(values)})" if len(values) < seeds else "")


def gains(eta: float, stage: str) -> list[float]:
    teacher, student = ACCURACY.get((eta, "0"), {}), ACCURACY.get((eta, stage), {})
    return [student[s] - teacher[s] for s in sorted(teacher) if s in student]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "results" / "cc.csv", toy_rows())


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_figures(stem: Path) -> None:
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 1000
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000


def test_accuracy_table_mean_std_bold_and_missing(capsys, results, tmp_path):
    out = tmp_path / "reports"
    code, stdout, _ = run(capsys, "--results", str(results), "--dataset", "toy", "--ctype", "cc",
                          "--columns", "0.5", "0.6", "0.7", "--out", str(out))
    assert code == 0
    markdown = (out / "toy_cc_table.md").read_text()
    assert markdown in stdout
    table = markdown_table(markdown, "toy: test accuracy (%)")
    assert list(table) == ["1 (Teacher)", "2", "3", "4", "5", "PLL"]
    labels = {"0": "1 (Teacher)", "1": "2", "2": "3", "3": "4", "4": "5", "p": "PLL"}
    for column, eta in enumerate((0.5, 0.6, 0.7)):
        means = {stage: statistics.fmean(ACCURACY[(eta, stage)].values())
                 for stage in labels if (eta, stage) in ACCURACY}
        best = max(means.values(), default=None)
        for stage, label in labels.items():
            cell = table[label][column]
            if (eta, stage) not in ACCURACY:
                assert cell == "—"
                continue
            text = expected_cell(list(ACCURACY[(eta, stage)].values()))
            assert cell == (f"**{text}**" if means[stage] == best else text)
    # Spot checks written out by hand: the bold best, a two-seed cell and a missing one.
    assert table["PLL"][0] == "**84.83 ± 1.31**"
    assert table["1 (Teacher)"][0] == "81.25 ± 1.25 (n=2)"
    assert table["PLL"][2] == "—" and "0.00 ± 0.00" not in markdown

    latex = (out / "toy_cc_table.tex").read_text()
    assert r"PLL & \textbf{84.83 $\pm$ 1.31} & -- & -- \\" in latex
    assert r"1 (Teacher) & 81.25 $\pm$ 1.25 ($n = 2$) & -- & 52.67 $\pm$ 2.05 \\" in latex
    assert_figures(out / "toy_cc_gain")


def test_gains_are_per_seed_differences(capsys, results, tmp_path):
    out = tmp_path / "reports"
    code, stdout, _ = run(capsys, "--results", str(results), "--out", str(out), "--name", "g")
    assert code == 0
    table = markdown_table(stdout, "toy: distillation gain in test accuracy (points)")
    assert list(table) == ["student 1", "student 2", "student 3", "student 4", "PLL"]
    for column, eta in enumerate((0.5, 0.6, 0.7, 0.8, 0.9)):
        for stage, label in zip(("1", "2", "3", "4", "p"), table):
            differences = gains(eta, stage)
            assert table[label][column] == (expected_cell(differences, signed=True) if differences else "—")
    # Seed 2 has no teacher at η=0.5: student 1's gain is over seeds 0 and 1 only.
    assert table["student 1"][0] == "+1.75 ± 0.75 (n=2)"
    assert_figures(out / "g_gain")


def test_gain_figure_bars_and_missing_marks(results):
    report = build_report(ReportConfig(results=(results,), filters=Filters(datasets=("toy",))))
    (axes, *_) = report.figure.axes
    heights = sorted(round(bar.get_height(), 6) for bar in axes.patches)
    expected = sorted(round(statistics.fmean(gains(eta, stage)), 6) for eta in (0.5, 0.6, 0.7, 0.8, 0.9)
                      for stage in ("1", "2", "3", "4", "p") if gains(eta, stage))
    assert heights == expected
    missing = sum(not gains(eta, stage) for eta in (0.5, 0.6, 0.7, 0.8, 0.9) for stage in ("1", "2", "3", "4", "p"))
    assert [text.get_text() for text in axes.texts].count("n/a") == missing


def test_conflicting_settings_are_a_one_line_error(capsys, tmp_path):
    results = write_csv(tmp_path / "cc.csv", toy_rows() + toy_rows(wd=0.001, offset=5.0))
    out = tmp_path / "reports"
    code, stdout, stderr = run(capsys, "--results", str(results), "--dataset", "toy", "--out", str(out))
    assert code == 1 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("error: toy:") and "WD 0.001, 0.01" in stderr
    assert "--wd" in stderr and not out.exists()

    code, stdout, _ = run(capsys, "--results", str(results), "--wd", "toy=0.01", "--out", str(out))
    assert code == 0 and markdown_table(stdout, "toy: test accuracy (%)")["PLL"][0] == "**84.83 ± 1.31**"
    for wd, best in ((["0.01"], "84.83"), (["0.5", "toy=1e-2"], "84.83"), (["0.001"], "89.83")):
        config = config_from_args(build_parser().parse_args(["--results", str(results), "--wd", *wd]))
        assert f"| PLL | **{best} ± 1.31** |" in build_report(config).markdown


def test_two_runs_with_equal_csv_settings_are_an_error(capsys, tmp_path):
    rows = toy_rows() + [row(eta=0.5, stage="1", seed=0, acc=70.0, run="toy-other-gamma")]
    code, _, stderr = run(capsys, "--results", str(write_csv(tmp_path / "cc.csv", rows)), "--out", str(tmp_path))
    assert code == 1 and stderr.count("\n") == 1
    assert "η=0.5 student 1 seed 0 has two runs" in stderr and "toy-other-gamma" in stderr


def test_duplicate_rows_of_a_run_count_once(capsys, tmp_path):
    rows = toy_rows()
    first = write_csv(tmp_path / "a.csv", rows + rows[:4])
    second = write_csv(tmp_path / "b.csv", rows[2:9])
    code, stdout, _ = run(capsys, "--results", str(first), str(second), "--out", str(tmp_path / "r"))
    assert code == 0
    assert markdown_table(stdout, "toy: test accuracy (%)")["2"][0] == expected_cell([81.0, 85.0, 84.0])


def test_teacher_last_is_not_a_setting(capsys, tmp_path):
    # A teacher row rewritten by a later `--last 1` chain keeps serving the `--last 0` students.
    rows = [dict(r, Last=1) if r["Distill"] == "0" else r for r in toy_rows()]
    results = write_csv(tmp_path / "cc.csv", rows)
    code, stdout, _ = run(capsys, "--results", str(results), "--last", "0", "--out", str(tmp_path / "r"))
    assert code == 0 and markdown_table(stdout, "toy: test accuracy (%)")["1 (Teacher)"][1] == "52.67 ± 2.05"
    code, _, stderr = run(capsys, "--results", str(results), "--last", "1", "--out", str(tmp_path / "r"))
    assert code == 1 and stderr == "error: toy: no runs with Last 1 (its runs have Last 0)\n"


def test_two_datasets_per_dataset_wd_one_panel_each(capsys, tmp_path):
    results = write_csv(tmp_path / "cc.csv", toy_rows("big", wd=5e-5) + toy_rows("big", wd=1e-4, offset=1)
                        + toy_rows("small", wd=5e-4) + toy_rows("small", wd=1e-3, offset=1))
    out = tmp_path / "reports"
    code, stdout, _ = run(capsys, "--results", str(results), "--dataset", "big", "small",
                          "--wd", "big=5e-5", "small=5e-4", "--out", str(out))
    assert code == 0
    name = "big-small_wdbig=5e-05+small=0.0005"
    assert_figures(out / f"{name}_gain")
    filters = Filters(datasets=("big", "small"), wd=PerDataset(named=(("big", 5e-5), ("small", 5e-4))))
    figure = build_report(ReportConfig(results=(results,), filters=filters)).figure
    assert [axes.get_title() for axes in figure.axes] == ["big", "small"]
    for dataset in ("big", "small"):
        assert markdown_table(stdout, f"{dataset}: test accuracy (%)")["PLL"][0] == "**84.83 ± 1.31**"


def test_missing_teacher_draws_only_missing_marks(capsys, tmp_path):
    rows = [r for r in toy_rows() if r["Distill"] != "0"]
    out = tmp_path / "reports"
    code, stdout, _ = run(capsys, "--results", str(write_csv(tmp_path / "cc.csv", rows)), "--out", str(out))
    assert code == 0
    assert set(sum(markdown_table(stdout, "toy: distillation gain in test accuracy (points)").values(), [])) == {"—"}
    assert markdown_table(stdout, "toy: test accuracy (%)")["1 (Teacher)"] == ["—", "—"]
    assert_figures(out / "toy_gain")


@pytest.mark.parametrize("argv, message, status", [
    (["--dataset", "cifar100"], "error: no runs of dataset cifar100 in the results (datasets there: toy)", 1),
    (["--ctype", "sym"], "error: toy: no runs with CType sym (its runs have CType cc)", 1),
    (["--wd", "cifar100=5e-5"], "error: --wd names cifar100, which is not among the datasets reported (toy)", 2),
    (["--wd", "1", "2"], "error: --wd: more than one plain value (1, 2); give one, or DATASET=VALUE per dataset", 2),
    (["--lr", "toy=fast"], "error: --lr: expected a number or DATASET=NUMBER, got 'toy=fast'", 2),
    (["--columns", "1.5"], "error: --columns: η must lie in [0, 1], got 1.5", 2),
    (["--name", "../x"], "error: --name '../x': use letters, digits and . _ + = - only", 2),
])
def test_user_mistakes_are_one_line_errors(capsys, results, argv, message, status):
    code, stdout, stderr = run(capsys, "--results", str(results), "--out", str(results.parent / "r"), *argv)
    assert code == status and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith(message)
    assert not (results.parent / "r").exists()


def test_missing_or_foreign_csv(capsys, tmp_path):
    code, _, stderr = run(capsys, "--results", str(tmp_path / "none.csv"))
    assert code == 2 and re.fullmatch(r"error: results file .*none\.csv not found .*\n", stderr)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    code, _, stderr = run(capsys, "--results", str(other))
    assert code == 1 and "is not a results CSV: no column Dataset" in stderr
