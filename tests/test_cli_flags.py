"""The CLI's flags parse as the reference's scripts write them."""

from __future__ import annotations

import pytest

import train_linear
from utils.stages import Stage


@pytest.mark.parametrize(
    "argv, partial",
    [
        ([], False),
        (["--partial"], True),
        (["--partial", "True"], True),
        (["--partial", "False"], False),
        (["--partial", "1"], True),
        (["--partial", "0"], False),
    ],
)
def test_partial_is_a_real_boolean(argv, partial):
    assert train_linear.build_parser().parse_args(argv).partial is partial


def test_lists_and_aliases():
    args = train_linear.build_parser().parse_args(
        ["--seeds", "4", "5", "--corruption", "0.1", "0.9", "--weight-decay", "1e-3", "--learning-rate", "0.2"]
    )
    assert args.seeds == [4, 5] and args.corruption == [0.1, 0.9] and args.wd == 1e-3 and args.lr == 0.2
    assert train_linear.build_parser().parse_args(["--manualSeed", "7"]).seeds == [7]
    assert train_linear.build_parser().parse_args([]).dist is None


def test_bad_boolean_and_unknown_flag_are_one_line(capsys):
    for argv in (["--partial", "maybe"], ["--no-such-flag"], ["--last", "2"]):
        with pytest.raises(SystemExit) as exit_info:
            train_linear.build_parser().parse_args(argv)
        assert exit_info.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_suggested_commands_are_built_from_the_parsed_settings():
    """A suggested command names every setting that differs from the defaults, and parses back to the same runs."""
    import shlex

    parser = train_linear.build_parser()
    args = parser.parse_args(
        ["-d", "synthetic", "--dist", "3", "--lr", "0.2", "--dry-run", "--manualSeed", "4", "--last", "1"]
    )
    command = lambda stage: train_linear.suggested_command(parser, args, "synthetic", stage)  # noqa: E731
    assert command(Stage.student(2)) == (
        "python3 train_linear.py -d synthetic --ctype cc --corruption 0.3 0.5 0.7 --seed 4 --lr 0.2 --which last "
        "--dist 2"
    )
    again = parser.parse_args(shlex.split(command(Stage.student(2)))[2:])
    assert train_linear.template(again, "synthetic", stage=Stage.student(2)).key() == (
        train_linear.template(args, "synthetic", stage=Stage.student(2)).key()
    )
    assert command(Stage.pll()).endswith("--lr 0.2 --which last --partial")
    assert "--which" not in command(Stage.teacher())  # a teacher learns from no checkpoint
    args = parser.parse_args(["--partial", "True", "--wd", "1"])
    assert train_linear.suggested_command(parser, args, "digits", Stage.teacher()) == (
        "python3 train_linear.py -d digits --ctype cc --corruption 0.3 0.5 0.7 --seed 0 1 2 --wd 1 --dist 0"
    )
