"""report.py on hand-made run stores: numbers computed here independently, missing cells, settings, errors, files."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from analysis.report_outputs import ReportConfig, build_reports
from analysis.selection import Filters, PerDataset
from report import main
from tests.store_factory import publish, toy_config
from training.store import RunStore

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
LABELS = {
    "0": "teacher (1)",
    "1": "student 1 (2)",
    "2": "student 2 (3)",
    "3": "student 3 (4)",
    "4": "student 4 (5)",
    "p": "PLL",
}


def toy_store(root: Path, dataset="toy", offset=0.0, skip=(), **changes) -> Path:
    for (eta, stage), by_seed in ACCURACY.items():
        if stage in skip:
            continue
        for seed, acc in by_seed.items():
            publish(root, toy_config(dataset, eta, stage, seed, **changes), acc + offset)
    return root


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return toy_store(tmp_path / "ck")


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


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_figures(stem: Path) -> None:
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 1000
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000


def test_accuracy_table_mean_std_bold_and_missing(capsys, store, tmp_path):
    out = tmp_path / "reports"
    code, stdout, _ = run(
        capsys,
        "-c",
        str(store),
        "--dataset",
        "toy",
        "--ctype",
        "cc",
        "--columns",
        "0.5",
        "0.6",
        "0.7",
        "--out",
        str(out),
    )
    assert code == 0
    markdown = (out / "toy_cc_table.md").read_text()
    assert markdown in stdout
    table = markdown_table(markdown, "toy: test accuracy (%)")
    assert list(table) == list(LABELS.values())
    for column, eta in enumerate((0.5, 0.6, 0.7)):
        means = {
            stage: statistics.fmean(ACCURACY[(eta, stage)].values()) for stage in LABELS if (eta, stage) in ACCURACY
        }
        best = max(means.values(), default=None)
        for stage, label in LABELS.items():
            cell = table[label][column]
            if (eta, stage) not in ACCURACY:
                assert cell == "—"
                continue
            text = expected_cell(list(ACCURACY[(eta, stage)].values()))
            assert cell == (f"**{text}**" if means[stage] == best else text)
    # Spot checks written out by hand: the bold best, a two-seed cell and a missing one.
    assert table["PLL"][0] == "**84.83 ± 1.31**"
    assert table["teacher (1)"][0] == "81.25 ± 1.25 (n=2)"
    assert table["PLL"][2] == "—" and "0.00 ± 0.00" not in markdown

    latex = (out / "toy_cc_table.tex").read_text()
    assert r"PLL & \textbf{84.83 $\pm$ 1.31} & -- & -- \\" in latex
    assert r"teacher (1) & 81.25 $\pm$ 1.25 ($n = 2$) & -- & 52.67 $\pm$ 2.05 \\" in latex
    assert_figures(out / "toy_cc_gain")


def test_gains_are_per_seed_differences(capsys, store, tmp_path):
    out = tmp_path / "reports"
    code, stdout, _ = run(capsys, "-c", str(store), "--out", str(out), "--name", "g")
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


def test_gain_figure_bars_and_missing_marks(store):
    (report,) = build_reports(ReportConfig(store=store, filters=Filters(datasets=("toy",))), RunStore(store).records())
    (axes, *_) = report.figure.axes
    heights = sorted(round(bar.get_height(), 6) for bar in axes.patches)
    expected = sorted(
        round(statistics.fmean(gains(eta, stage)), 6)
        for eta in (0.5, 0.6, 0.7, 0.8, 0.9)
        for stage in ("1", "2", "3", "4", "p")
        if gains(eta, stage)
    )
    assert heights == expected
    missing = sum(not gains(eta, stage) for eta in (0.5, 0.6, 0.7, 0.8, 0.9) for stage in ("1", "2", "3", "4", "p"))
    assert [text.get_text() for text in axes.texts].count("n/a") == missing


def test_several_settings_show_the_default_and_name_the_others(capsys, store, tmp_path):
    toy_store(store, wd=0.001, offset=5.0)
    toy_store(store, offset=-5.0, optimizer="lbfgs")
    out = tmp_path / "reports"
    code, stdout, _ = run(capsys, "-c", str(store), "--dataset", "toy", "--out", str(out))
    assert code == 0 and markdown_table(stdout, "toy: test accuracy (%)")["PLL"][0] == "**84.83 ± 1.31**"
    assert "also present: " in stdout and "wd 0.001 (22 runs: --wd 0.001)" in stdout
    assert "optimizer lbfgs (22 runs: --optimizer lbfgs)" in stdout
    code, stdout, _ = run(capsys, "-c", str(store), "--wd", "0.001", "--out", str(out))
    assert code == 0 and markdown_table(stdout, "toy: test accuracy (%)")["PLL"][0] == "**89.83 ± 1.31**"
    assert (out / "toy_cc_wd0.001_table.md").is_file() and (out / "toy_cc_table.md").is_file()
    code, stdout, _ = run(capsys, "-c", str(store), "--every-setting", "--out", str(tmp_path / "all"))
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "all").glob("*_table.md")) == [
        "toy_cc_lbfgs_table.md",
        "toy_cc_table.md",
        "toy_cc_wd0.001_table.md",
    ]


def test_without_the_default_the_setting_with_most_runs_is_shown(capsys, tmp_path):
    store = toy_store(tmp_path / "ck", wd=0.001)
    publish(store, toy_config(wd=0.002, stage="0", seed=0), 70.0)
    code, stdout, _ = run(capsys, "-c", str(store), "--out", str(tmp_path / "r"))
    assert code == 0 and "wd 0.002 (1 runs: --wd 0.002)" in stdout
    assert markdown_table(stdout, "toy: test accuracy (%)")["PLL"][0] == "**84.83 ± 1.31**"


def test_which_selects_the_students_that_learnt_from_the_last_checkpoint(capsys, store, tmp_path):
    for (eta, stage), by_seed in ACCURACY.items():
        if stage != "0":
            for seed, acc in by_seed.items():
                publish(store, toy_config(eta=eta, stage=stage, seed=seed, last=1), acc - 10)
    code, stdout, _ = run(capsys, "-c", str(store), "--which", "last", "--out", str(tmp_path / "r"))
    table = markdown_table(stdout, "toy: test accuracy (%)")
    assert code == 0 and table["teacher (1)"][1] == "**52.67 ± 2.05**" and table["PLL"][0] == "74.83 ± 1.31"


def test_two_datasets_per_dataset_wd_one_panel_each(capsys, tmp_path):
    store = tmp_path / "ck"
    for dataset, wds in (("big", (5e-5, 1e-4)), ("small", (5e-4, 1e-3))):
        for offset, wd in enumerate(wds):
            toy_store(store, dataset, offset=offset, wd=wd)
    out = tmp_path / "reports"
    code, stdout, _ = run(
        capsys, "-c", str(store), "--dataset", "big", "small", "--wd", "big=5e-5", "small=5e-4", "--out", str(out)
    )
    assert code == 0
    assert_figures(out / "big-small_cc_wd5e-05_gain")
    filters = Filters(datasets=("big", "small"), wd=PerDataset(named=(("big", 5e-5), ("small", 5e-4))))
    (report,) = build_reports(ReportConfig(store=store, filters=filters), RunStore(store).records())
    # each panel's title names what departs from its dataset's default (toy datasets default to wd 5e-4)
    assert [axes.get_title() for axes in report.figure.axes] == ["big\nwd 5e-05", "small"]
    for dataset in ("big", "small"):
        assert markdown_table(stdout, f"{dataset}: test accuracy (%)")["PLL"][0] == "**84.83 ± 1.31**"


def test_missing_teacher_draws_only_missing_marks(capsys, tmp_path):
    store = toy_store(tmp_path / "ck", skip=("0",))
    out = tmp_path / "reports"
    code, stdout, _ = run(capsys, "-c", str(store), "--out", str(out))
    assert code == 0
    assert set(sum(markdown_table(stdout, "toy: distillation gain in test accuracy (points)").values(), [])) == {"—"}
    assert markdown_table(stdout, "toy: test accuracy (%)")["teacher (1)"] == ["—", "—"]
    assert_figures(out / "toy_cc_gain")


def test_results_csv_keeps_only_the_runs_it_lists(capsys, store, tmp_path):
    listed = [r.name for r in RunStore(store).records() if r.config.corruption == 0.5]
    path = tmp_path / "listed.csv"
    from training.results import COLUMNS

    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, restval="0")
        writer.writeheader()
        writer.writerows({"Run": name, "Dataset": "toy"} for name in listed)
    code, stdout, _ = run(capsys, "-c", str(store), "--results", str(path), "--out", str(tmp_path / "r"))
    table = markdown_table(stdout, "toy: test accuracy (%)")
    assert code == 0 and len(table["PLL"]) == 1, "only η = 0.5 is listed"


def test_a_damaged_run_is_refused_with_the_command_that_redoes_it(capsys, store, tmp_path):
    record = next(r for r in RunStore(store).records() if r.config.stage.is_pll)
    (record.folder / "best.ckpt").write_bytes(b"cut")
    code, stdout, stderr = run(capsys, "-c", str(store), "--out", str(tmp_path / "r"))
    assert code == 1 and stdout == "" and stderr.count("\n") == 1
    assert f"run {record.name} in {store} is damaged (best.ckpt has 3 bytes" in stderr
    assert "python3 train_linear.py -d toy --ctype cc --corruption 0.5 --seed 0" in stderr and "--partial" in stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "argv, message, status",
    [
        (["--dataset", "cifar100"], "error: no runs of dataset cifar100 in the store (datasets there: toy); train", 1),
        (["--dataset", "nosuch"], "error: unknown dataset 'nosuch'; choose one of: digits, synthetic", 2),
        (["--ctype", "sym"], "error: toy: no runs with --ctype sym (its runs have --ctype cc)", 1),
        (["--wd", "cifar100=5e-5"], "error: --wd names cifar100, which is not among the datasets reported (toy)", 2),
        (
            ["--wd", "1", "2"],
            "error: --wd: more than one plain value (1, 2); give one, or DATASET=VALUE per dataset",
            2,
        ),
        (["--lr", "toy=fast"], "error: --lr: expected a number or DATASET=NUMBER, got 'toy=fast'", 2),
        (["--columns", "1.5"], "error: --columns must lie in [0, 1], got 1.5", 2),
        (["--name", "../x"], "error: --name '../x': use letters, digits and . _ + = - only", 2),
    ],
)
def test_user_mistakes_are_one_line_errors(capsys, store, argv, message, status):
    code, stdout, stderr = run(capsys, "-c", str(store), "--out", str(store.parent / "r"), *argv)
    assert code == status and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith(message), stderr
    assert not (store.parent / "r").exists()


def test_an_empty_store_is_one_line_not_a_crash(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, stdout, stderr = run(capsys, "-c", str(tmp_path / "empty"), "--out", str(tmp_path / "r"))
    assert code == 1 and stdout == "" and stderr.startswith("error: no runs to report") and stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_missing_store_or_results_file(capsys, tmp_path, store):
    code, _, stderr = run(capsys, "-c", str(tmp_path / "none"))
    assert code == 2 and "is not a run store" in stderr
    code, _, stderr = run(capsys, "-c", str(store), "--results", str(tmp_path / "none.csv"))
    assert code == 2 and "results file" in stderr and "not found" in stderr
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    code, _, stderr = run(capsys, "-c", str(store), "--results", str(other))
    assert code == 1 and "is not a results CSV written by this project" in stderr
