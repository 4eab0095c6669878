"""The shared pieces every script stands on: stage vocabulary, CLI conventions, the error contract,
atomic groups of files, output probes, scoped thread counts and the fault harness itself."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

from tests.fault_harness import os_refusal, snapshot
from utils import atomic
from utils.cli import Parser, add_seeds, add_which
from utils.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, UsageError, UserError, exits_cleanly
from utils.outputs import planned_outputs
from utils.stages import BASELINES, Stage, stage_order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- stages --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stage, slug, label, distill, paper",
    [
        (Stage.teacher(), "teacher", "teacher", "0", "1 (Teacher)"),
        (Stage.student(1), "student1", "student 1", "1", "2"),
        (Stage.student(4), "student4", "student 4", "4", "5"),
        (Stage.pll(), "pll", "PLL", "p", "PLL"),
    ],
)
def test_every_numbering_is_a_translation_of_one_stage(stage, slug, label, distill, paper):
    assert (stage.slug, stage.label, stage.distill, stage.paper_row) == (slug, label, distill, paper)
    for spelling in (slug, label, distill, stage.label.upper()):
        assert Stage.parse(spelling) == stage


def test_solver_and_gmm_numberings():
    assert Stage.from_solver_round(1) == Stage.teacher() and Stage.from_solver_round(3) == Stage.student(2)
    assert Stage.from_gmm_stage(1) == Stage.teacher() and Stage.from_gmm_stage(2) == Stage.student(1)
    assert Stage.student(2).solver_round == 3 and Stage.parse(0) == Stage.teacher() and Stage.parse(3).round == 3
    with pytest.raises(ValueError):
        Stage.from_solver_round(0)
    with pytest.raises(ValueError):
        Stage.pll().solver_round


def test_stage_order_and_teachers():
    stages = [Stage.pll(), Stage.student(2), Stage(next(iter(BASELINES))), Stage.teacher(), Stage.student(1)]
    assert [s.slug for s in stage_order(stages)] == ["teacher", "student1", "student2", "pll", next(iter(BASELINES))]
    assert Stage.student(1).learns_from == Stage.teacher() and Stage.pll().learns_from == Stage.teacher()
    assert Stage.student(3).learns_from == Stage.student(2) and Stage.teacher().learns_from is None
    for bad in ("student0", "nosuch", "-1"):
        with pytest.raises(ValueError):
            Stage.parse(bad)


# -- CLI conventions -------------------------------------------------------------------------------


def _parser() -> Parser:
    parser = Parser(prog="x")
    parser.add_argument("--partial-rate", type=float, default=0.5, help="a rate")
    add_seeds(parser, [0, 1, 2])
    add_which(parser)
    return parser


def test_no_abbreviations_and_one_line_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["--partial", "0.1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unrecognized arguments: --partial")


def test_help_shows_defaults_and_aliases_work():
    text = _parser().format_help()
    assert "(default: 0.5)" in text and "(default: 0 1 2)" in text and "(default: best)" in text
    args = _parser().parse_args(["--manualSeed", "4", "5", "--last", "1"])
    assert args.seeds == [4, 5] and args.which == "last"
    for bad in (["--seed", "-1"], ["--seed", str(2**32)], ["--seed", "x"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(bad)


# -- the error contract ------------------------------------------------------------------------------


def _main_raising(error: BaseException):
    @exits_cleanly
    def main(argv=None):
        raise error

    return main


@pytest.mark.parametrize(
    "error, status, line",
    [
        (UsageError("--lr must be positive"), 2, "error: --lr must be positive"),
        (UserError("file x is damaged;\n retrain it"), 1, "error: file x is damaged; retrain it"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/x/y"),
            1,
            "error: cannot use /x/y: no space left on the device (disk full) (ENOSPC); "
            "free some space or choose another disk",
        ),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted"),
        (Terminated(), EXIT_TERMINATED, "terminated"),
    ],
)
def test_errors_become_one_line_and_a_status(capsys, error, status, line):
    assert _main_raising(error)([]) == status
    assert capsys.readouterr().err == line + "\n"


def test_a_bug_keeps_its_traceback(capsys):
    assert _main_raising(ZeroDivisionError("boom"))([]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError: boom" in err and "report it" in err


def test_handlers_are_restored_after_main():
    before = signal.getsignal(signal.SIGTERM)
    assert _main_raising(UserError("x"))([]) == 1
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_during_start_up_is_one_line():
    # The test hook sends SIGTERM while the script imports torch (through the training code).
    env = {**os.environ, "SELFDISTILL_SIGNAL_AT_IMPORT": "torch:SIGTERM"}
    code = (
        "import sys\nfrom utils.errors import exits_cleanly\n@exits_cleanly\ndef main(argv=None):\n"
        "    import torch\n    return 0\nsys.exit(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (EXIT_TERMINATED, "terminated\n")


# -- atomic groups and output probes --------------------------------------------------------------------


def test_atomic_group_writes_all_or_nothing(tmp_path):
    targets = [tmp_path / "a.png", tmp_path / "a.pdf"]
    with pytest.raises(RuntimeError):
        with atomic.atomic_group(targets) as temps:
            temps[0].write_text("png")
            raise RuntimeError("interrupted between the two files")
    assert list(tmp_path.iterdir()) == []
    with atomic.atomic_group(targets) as temps:
        for temp in temps:
            temp.write_text(temp.name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf", "a.png"]


def test_output_plan_names_the_flag_and_removes_what_it_created(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="--out .*file is a file, not a folder"):
        with planned_outputs() as plan:
            plan.folder(tmp_path / "file", "--out")
    with pytest.raises(UserError, match="--results .* is a folder, not a file"):
        with planned_outputs() as plan:
            plan.file(tmp_path, "--results")
    with pytest.raises(UserError, match=r"--out: cannot write to .*read-only file system \(EROFS\)"):
        with os_refusal(tmp_path / "ro"), planned_outputs() as plan:
            plan.folder(tmp_path / "ro" / "deep", "--out")
    with pytest.raises(KeyboardInterrupt):
        with planned_outputs() as plan:
            plan.folder(tmp_path / "new" / "deeper", "--out")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_os_refusal_covers_every_write_primitive(tmp_path):
    before = snapshot(tmp_path)
    with os_refusal(tmp_path, errno.ENOSPC):
        for attempt in (
            lambda: (tmp_path / "a").write_text("x"),
            lambda: open(tmp_path / "b", "w"),
            lambda: os.open(tmp_path / "c", os.O_CREAT | os.O_WRONLY),
            lambda: (tmp_path / "d").mkdir(),
            lambda: atomic.write_text(tmp_path / "e", "x"),
        ):
            with pytest.raises(OSError) as info:
                attempt()
            assert info.value.errno == errno.ENOSPC
    assert snapshot(tmp_path) == before
