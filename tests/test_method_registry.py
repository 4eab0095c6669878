"""The method registry: its entries agree with what the code trains, no other module compares a method's
name, and a method registered by a test alone runs through chain → store → CSV → sweep → report."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import report
import sweep
import train_linear
from analysis.report_outputs import build_reports
from training.methods import Given, learned, loss_for
from training.store import RunStore
from utils.methods import BASELINES, METHODS, Method, baseline_names, register
from utils.stages import PLL_NAME, STUDENT, TEACHER, Stage

REPO = Path(__file__).resolve().parents[1]
REGISTRY = {Path("utils/methods.py"), Path("training/methods.py")}


def _string_literals(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*map(_string_literals, node.elts)) if node.elts else set()
    return set()


def name_comparisons(source: str, names: set[str], constants: set[str]) -> list[str]:
    """Comparisons (==, in, match cases) of a value with a method's name, or with the stage-name constants."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            literal = set().union(*map(_string_literals, sides)) & names
            named = {n.id for side in sides for n in ast.walk(side) if isinstance(n, ast.Name)} & constants
            if literal or named:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.MatchValue) and _string_literals(node.value) & names:
            found.append(f"line {node.lineno}: case {ast.unparse(node.value)}")
    return found


def test_the_scan_finds_name_comparisons():
    names, constants = set(METHODS), {"TEACHER"}
    assert name_comparisons('if stage.name == "clean":\n    pass', names, constants)
    assert name_comparisons('x = s.name in ("boot-soft", "gce")', names, constants)
    assert name_comparisons("x = s.name != TEACHER", names, constants)
    assert name_comparisons('match s.name:\n    case "cl":\n        pass', names, constants)
    assert not name_comparisons('x = s.method.oracle\ny = command == "run"', names, constants)


def test_no_module_outside_the_registry_compares_a_method_name():
    constants = {"TEACHER", "STUDENT", "PLL_NAME", "NON_CONVEX", "ORACLES"}
    offenders = {}
    for path in sorted(REPO.rglob("*.py")):
        relative = path.relative_to(REPO)
        if relative.parts[0] in ("tests", ".git") or relative in REGISTRY:
            continue
        # The stage vocabulary compares its own three names (the numbering table), and nothing else.
        allowed = {"TEACHER", "STUDENT", "PLL_NAME"} if relative == Path("utils/stages.py") else set()
        names = set() if allowed else set(METHODS)
        source = path.read_text(encoding="utf-8")
        words = {f'"{name}"' for name in names} | {f"'{name}'" for name in names} | (constants - allowed)
        if not any(word in source for word in words):  # nothing to compare: skip the parse
            continue
        found = name_comparisons(source, names, constants - allowed)
        if found:
            offenders[str(relative)] = found
    assert not offenders, f"ask the method registry (utils/methods.py) instead: {offenders}"


def test_the_entries_say_what_the_code_does():
    assert list(METHODS)[:3] == [TEACHER, STUDENT, PLL_NAME] and list(BASELINES) == baseline_names()
    assert set(BASELINES) == set(METHODS) - {TEACHER, STUDENT, PLL_NAME}
    assert [name for name, m in METHODS.items() if not m.depends_on_eta] == ["clean"]
    assert [name for name, m in METHODS.items() if m.oracle] == ["fc-true", "clean"]
    assert [name for name, m in METHODS.items() if m.no_objective] == ["boot-soft"]
    assert Stage.parse("fc-est").checkpoint_source == Stage.teacher() and Stage.parse("fc-est").learns_from is None
    assert Stage.student(3).checkpoint_source == Stage.student(2) and Stage.pll().learns_from == Stage.teacher()
    for entry in METHODS.values():  # every path resolves, every loss builds
        config_fields = {"q": 0.7}
        options = {name: config_fields[name] for name in entry.loss_settings}
        if "a transition matrix" in entry.needs:
            options["transition"] = torch.eye(3)
        from training.methods import resolve

        assert callable(resolve(entry.targets)), entry.name
        assert resolve(entry.loss)(**options) is not None, entry.name


def test_registering_checks_the_entry():
    with pytest.raises(ValueError, match="already registered"):
        register(Method("gce", "GCE", "training.methods:noisy_one_hot"))
    with pytest.raises(ValueError, match="slug"):
        register(Method("Half Smooth", "x", "training.methods:noisy_one_hot"))
    with pytest.raises(ValueError, match="learns_from"):
        Method("x", "x", "training.methods:noisy_one_hot", learns_from="the moon")
    with pytest.raises(ValueError, match="module:attribute"):
        Method("x", "x", "noisy_one_hot")


# -- a method added by one registry entry ----------------------------------------------------------------


def half_smooth(given: Given) -> torch.Tensor:
    """Targets halfway between the noisy one-hot label and the uniform distribution."""
    return 0.5 * given.one_hot(given.noisy[given.train_index]) + 0.5 / given.num_classes


TOY = Method("half-smooth", "half smooth", f"{__name__}:half_smooth", about="½ one-hot + ½ uniform, cross-entropy")
CHAIN = ["-d", "synthetic", "--epochs", "2", "--seed", "0", "--corruption", "0.4", "--rounds", "0"]
SWEEP = """
name = "toy"
device = "cpu"
precision = "fp32"
seeds = [0]
corruption = [0.4, 0.6]
rounds = 0
epochs = 2
[grids.toy]
ctype = "cc"
datasets = ["synthetic"]
baselines = ["half-smooth"]
"""


@pytest.fixture
def toy_method():
    register(TOY)
    yield TOY
    del METHODS[TOY.name]


def test_a_method_registered_by_a_test_runs_through_chain_store_csv_sweep_and_report(toy_method, tmp_path, capsys):
    store, results = tmp_path / "ck", tmp_path / "results"
    args = [*CHAIN, "--baselines", "half-smooth", "-c", str(store), "--csv", str(results / "cc.csv")]
    assert train_linear.main(args) == 0
    assert "half smooth" in capsys.readouterr().out  # the chain's table

    records = {(r.config.stage.slug, r.config.corruption): r for r in RunStore(store).records()}
    toy = records[("half-smooth", 0.4)]
    teacher = records[("teacher", 0.4)]
    with np.load(toy.folder / "labels.npz") as labels, np.load(teacher.folder / "labels.npz") as drawn:
        assert np.array_equal(labels["noisy"], drawn["noisy"]), "a baseline learns from the teacher's noisy labels"
    assert 10 < toy.metrics["test_acc"] <= 100 and toy.weights("best").shape == teacher.weights("best").shape

    given = Given(
        toy.config, torch.zeros(4, 2), np.array([0, 1, 2, 3]), np.arange(4), np.arange(4), 4, None, None, None
    )
    targets = learned(toy.config, given.inputs, given.noisy, given.train_index, given.true, 4, None, None).targets
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(4))
    torch.testing.assert_close(targets.diagonal(), torch.full((4,), 0.5 + 0.5 / 4))
    assert type(loss_for([toy.config], [None], "cpu")).__name__ == "SoftCrossEntropy"

    with open(results / "cc.csv", newline="") as stream:
        assert "half-smooth" in {row["Distill"] for row in csv.DictReader(stream)}

    (tmp_path / "toy.toml").write_text(SWEEP)
    sweep_args = [str(tmp_path / "toy.toml"), "--parallel", "1", "-c", str(store), "--csv-dir", str(results)]
    assert sweep.main(sweep_args) == 0
    capsys.readouterr()
    records = RunStore(store).records()
    trained = {(r.config.stage.slug, r.config.corruption) for r in records}
    assert ("half-smooth", 0.6) in trained and len(trained) == 6  # η 0.4 reused, η 0.6 trained

    # report.py's tables and figures, built in memory (saving the figures would only add seconds)
    (built,) = build_reports(report.config_from_args(report.build_parser().parse_args(["-c", str(store)])), records)
    methods = built.markdown.split("of every method", 1)[1]
    row = next(line for line in methods.splitlines() if line.startswith("| half smooth"))
    assert row.count("±") == 2  # a cell for each η
    labels = {tick.get_text() for axes in built.correction.axes for tick in axes.get_xticklabels()}
    assert "half smooth" in labels


def test_waiting_for_other_processes_reads_each_lock_holder_once(tmp_path):
    # A holder that releases its lock between two reads of it: each lock's holder is read once, then used.
    from tests.store_factory import toy_config
    from training.stages import StageContext, _wait_for_others

    answers = iter([{"pid": 4242, "described": "process 4242 on node7 since 2026-01-01 00:00:00"}, None, None])
    announced = []

    class Releasing(RunStore):
        def lock_holder(self, config):
            return next(answers, None)

    ctx = StageContext(Releasing(tmp_path / "ck"), lambda c: tmp_path / "r.csv", str, announce=announced.append)
    _wait_for_others([toy_config(seed=0)], ctx)
    assert announced == ["waiting for 1 run(s) held by process 4242 on node7 since 2026-01-01 00:00:00"]
