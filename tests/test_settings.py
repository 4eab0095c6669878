"""The settings table (training/settings.py): every hint a report prints is a command that works and selects
what it says; filters check values, not training rules; sweep.py overrides the machine; a setting registered
from outside appears in every parser, filter, sweep file and run identity."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

import plot_softmax_simplex
import report
import sweep
import train_linear
from analysis.selection import select
from sweeping.spec import load_sweep, train_keys
from tests.store_factory import publish, toy_config
from training import settings
from training.config import TrainConfig
from training.store import RunStore
from utils.errors import UsageError, UserError

REPO = Path(__file__).resolve().parents[1]


def _chain(root: Path, accuracy: float, stages=("0", "1", "p"), **changes) -> None:
    teacher = publish(root, toy_config(stage="0", **changes), accuracy)
    for stage in stages[1:]:
        publish(root, toy_config(stage=stage, **changes), accuracy + 1, teacher=teacher.name)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Coexisting settings of one dataset: the default (with a baseline), lbfgs, a validation split of 0.2,
    independent seeding, another wd, and students that learnt from the last checkpoint."""
    root = tmp_path_factory.mktemp("store") / "ck"
    _chain(root, 80.0, stages=("0", "1", "p", "ls"))
    _chain(root, 70.0, optimizer="lbfgs")
    _chain(root, 71.0, select="val", val_fraction=0.2)
    _chain(root, 72.0, seeding="independent")
    _chain(root, 73.0, wd=1e-3)
    publish(root, toy_config(stage="1", last=1), 60.0)
    return root


@functools.cache
def _records(store: Path) -> list:
    return list(RunStore(store).records())  # verified once, read by every view


@functools.cache
def _selection(store: Path, flags: tuple[str, ...]):
    args = report.build_parser().parse_args(["-c", str(store), "-d", "toy", *flags])
    try:
        (results,) = select(_records(store), report.config_from_args(args).filters)
    except UserError as error:
        return None, str(error)
    return results, ""


def _view(store: Path, flags: list[str]):
    """What report.py selects with ``flags``: (the dataset's results, the error message if none)."""
    return _selection(store, tuple(flags))


def _hints(text: str) -> list[tuple[int, list[str]]]:
    """The (run count, flags) pairs of an 'also present' note."""
    return [(int(count), flags.split()) for count, flags in re.findall(r"\((\d+) runs: ([^)]*)\)", text)]


def _selected_values(flags: list[str]) -> dict[str, object]:
    """Setting → value as the flags state them (the display form, e.g. --which last)."""
    by_flag = {s.flag: s for s in settings.SETTINGS.values()}
    return {by_flag[flag].name: value for flag, value in zip(flags[::2], flags[1::2])}


def test_every_hint_of_a_report_is_a_command_that_selects_what_it_says(store):
    seen: set[tuple[str, ...]] = set()
    todo: list[list[str]] = [[]]
    while todo:  # every view the hints reach, and the hints printed there in turn
        flags = todo.pop()
        results, error = _view(store, flags)
        assert results is not None, f"report.py {' '.join(flags)}: {error}"
        for count, hint in _hints(results.others):
            reached, error = _view(store, hint)
            assert reached is not None, f"the hint {' '.join(hint)} selects nothing: {error}"
            assert len(reached.runs) == count, f"{' '.join(hint)} names {count} runs, selects {len(reached.runs)}"
            for name, value in _selected_values(hint).items():
                assert settings.SETTINGS[name].display(reached.setting.get(name)) == value, (hint, name)
            if tuple(hint) not in seen:
                seen.add(tuple(hint))
                todo.append(hint)
    assert {"--optimizer", "--val-fraction", "--seeding", "--wd", "--which"} <= {f for h in seen for f in h}
    # A filter that matches nothing: the error names the values present, and each of them is a working filter.
    results, error = _view(store, ["--wd", "0.3"])
    assert results is None and "its runs have --wd " in error
    values = error.split("its runs have --wd ", 1)[1].rstrip(")").split(", ")
    assert len(values) == 2
    for value in values:
        reached, problem = _view(store, ["--wd", value])
        assert reached is not None and settings.SETTINGS["wd"].display(reached.setting.get("wd")) == value, problem


def test_report_selects_lbfgs_runs_by_their_wd(store, tmp_path, capsys):
    """A filter applies no training rule: lbfgs with a given wd selects runs (it used to ask for --wd > 0)."""
    argv = ["-c", str(store), "-d", "toy", "--optimizer", "lbfgs", "--wd", "0.0005", "--out", str(tmp_path)]
    assert report.main(argv) == 0
    out = capsys.readouterr().out
    assert "optimizer lbfgs" in out and "70.00" in out
    for bad in (["--wd", "-1"], ["--val-fraction", "1"], ["--optimizer", "adam"]):
        with pytest.raises((UsageError, SystemExit)):
            report.config_from_args(report.build_parser().parse_args(bad))


def test_plot_filters_need_no_redundant_flag():
    parser = plot_softmax_simplex.build_parser()
    assert plot_softmax_simplex.wanted_settings(parser.parse_args(["--optimizer", "lbfgs"])) == {"optimizer": "lbfgs"}
    assert plot_softmax_simplex.wanted_settings(parser.parse_args(["--val-fraction", "0.2"])) == {"val_fraction": 0.2}
    command = plot_softmax_simplex.train_command(parser.parse_args(["--val-fraction", "0.2", "--wd", "0.001"]))(0.5)
    assert command.endswith("--wd 0.001 --select val --val-fraction 0.2")


def test_sweep_overrides_the_files_device_and_precision(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(
        'device = "cuda"\nprecision = "fp16"\nseeds = [0]\n[grids.g]\nctype = "sym"\ndatasets = ["digits"]\n'
    )
    chain = load_sweep(path, device="cpu", precision="fp32").jobs[0].work
    assert (chain.options.device, chain.options.precision) == ("cpu", "fp32")
    assert load_sweep(path).jobs[0].work.options.device == "cuda"
    args = sweep.build_parser().parse_args([str(path), "--device", "auto", "--precision", "bf16"])
    assert (args.device, args.precision) == ("auto", "bf16")


@pytest.mark.slow
def test_the_paper_sweep_dry_runs_on_a_cpu(tmp_path, capsys):
    argv = [str(REPO / "sweeps/paper.toml"), "--only", "fig2", "--device", "cpu", "--dry-run"]
    assert sweep.main([*argv, "-c", str(tmp_path / "ck"), "--csv-dir", str(tmp_path / "r")]) == 0
    assert "paper: 12 jobs (6 extractions, 6 chains)" in capsys.readouterr().out


@pytest.fixture
def toy_setting(monkeypatch):
    """A float setting registered from here, as a new setting would be declared in the table."""
    toy = settings.Setting(
        "label_temperature", float, 1.0, "--label-temperature", "temperature of the soft labels", low=0.0,
        low_open=True, short="T", hashed_at_default=False,
    )  # fmt: skip
    monkeypatch.setitem(settings.SETTINGS, toy.name, toy)  # taken out of the table again after the test
    return toy


def test_a_setting_registered_from_outside_is_everywhere(toy_setting, tmp_path):
    parser = train_linear.build_parser()
    default = train_linear.template(parser.parse_args(["--dist", "0"]), "digits")
    config = train_linear.template(parser.parse_args(["--label-temperature", "2"]), "digits")
    assert config.label_temperature == 2.0 and default.label_temperature == 1.0
    # Identity: the value changes the run's hash; the default leaves the hash of stored runs as it was.
    assert config.settings_hash() != default.settings_hash()
    plain = {k: v for k, v in default.to_dict().items() if k != "label_temperature"}
    assert TrainConfig.from_dict(plain).run_name() == default.run_name()
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(UsageError, match="--label-temperature must be positive"):
        train_linear.check_args(parser.parse_args(["--label-temperature", "0"]))
    # The command that trains it again names it.
    args = parser.parse_args(["--label-temperature", "2"])
    assert "--label-temperature 2" in train_linear.suggested_command(parser, args, "digits", None)
    # Filters of report.py and runs.py.
    args = report.build_parser().parse_args(["--label-temperature", "2"])
    assert dict(report.config_from_args(args).filters.values) == {"label_temperature": 2.0}
    # A sweep-file key, typed and checked as the flag.
    assert "label_temperature" in train_keys()
    path = tmp_path / "t.toml"
    sweep_text = 'device = "cpu"\nprecision = "fp32"\n[grids.g]\nctype = "sym"\ndatasets = ["digits"]\n'
    path.write_text(sweep_text + "label_temperature = 3\n")
    assert load_sweep(path).jobs[0].work.settings.label_temperature == 3.0
    path.write_text(sweep_text + "label_temperature = -1\n")
    with pytest.raises(UsageError, match=r"\[grids.g\]: label_temperature must be positive"):
        load_sweep(path)


@pytest.mark.slow
def test_hints_over_trained_runs_are_commands_report_accepts(tmp_path, capsys):
    """End to end: tiny trained chains in coexisting settings; report.py run with each hint it prints."""
    common = ["-d", "digits", "--corruption", "0.5", "--seed", "0", "--rounds", "1", "--epochs", "2"]
    common += ["-c", str(tmp_path / "ck"), "--csv", str(tmp_path / "r.csv")]
    for extra in (
        ["--baselines", "ls"],
        ["--optimizer", "lbfgs"],
        ["--select", "val", "--val-fraction", "0.2"],
        ["--seeding", "independent"],
        ["--wd", "0.05"],
    ):
        assert train_linear.main([*common, *extra]) == 0
    capsys.readouterr()
    base = ["-c", str(tmp_path / "ck"), "-d", "digits", "--out", str(tmp_path / "reports")]
    assert report.main(base) == 0
    hints = {(count, tuple(flags)) for count, flags in _hints(capsys.readouterr().out)}  # each caption repeats it
    assert len(hints) == 4
    for count, flags in sorted(hints):
        assert report.main([*base, *flags]) == 0, flags
        out = capsys.readouterr().out
        setting = out.split("Setting: ", 1)[1].split(" (also present", 1)[0]
        for name, value in _selected_values(flags).items():
            assert f"{name.replace('_', ' ')} {value}" in setting, (flags, setting)
        assert any(f"({n} runs: " in out for n in range(1, 100))  # the way back is named too


def test_the_simplex_plot_names_only_flags_it_has(store):
    """plot_softmax_simplex.py's --which is the checkpoint it plots: a setting that differs in the students'
    checkpoint is named without flags there; every flag it does name is one of its filters."""
    from analysis import settings as settings_mod

    configs = [record.config for record in _records(store)]
    found = settings_mod.settings_of(configs)
    chosen, others = settings_mod.choose(found, "toy", {})
    note = settings_mod.describe_others(chosen, others, found, unselectable=("last",))
    assert re.search(r"last last \(\d+ runs\)", note)
    parser = plot_softmax_simplex.build_parser()
    for count, flags in _hints(note):
        wanted = plot_softmax_simplex.wanted_settings(parser.parse_args(flags))
        assert {name: settings.SETTINGS[name].display(value) for name, value in wanted.items()} == (
            _selected_values(flags)
        )


def test_the_command_that_trains_a_baseline_names_it_and_its_own_settings():
    # A damaged baseline run's hint: the chain with that baseline beside it (no --dist), with gce's own q.
    import dataclasses

    from tests.store_factory import toy_config
    from training.commands import train_command
    from utils.stages import Stage

    gce = dataclasses.replace(toy_config(seed=0), stage=Stage.parse("gce"), q=0.5)
    command = train_command(gce, "ck").split()
    assert command[-2:] == ["--baselines", "gce"] and "--dist" not in command
    assert command[command.index("--q") + 1] == "0.5"
    smoothing = train_command(dataclasses.replace(gce, stage=Stage.parse("ls")), "ck").split()
    assert "--q" not in smoothing and smoothing[-2:] == ["--baselines", "ls"]
