"""Security fault suite, inputs and exports: what a user hands the scripts (sweep files, features files,
output paths) is data, and what they export (CSV, LaTeX, Markdown, figures) never runs as code.

- Sweep files: a shell or flag payload in any string a sweep file carries (names, partitions, grid,
  dataset and setting names, values) is refused in one line before any script is generated;
  ``../`` and absolute names cannot move the logs; ``[resources]`` obey the flags' bounds; the
  TOML's shape is checked at every level.
- Features files: tensors that are not plain dense CPU numbers, labels that would size K by
  themselves (2**63 − 1), features too large for float32 arithmetic, a symlink loop: one line each.
- Output paths: a device node, FIFO or socket is refused (never replaced by a regular file, never a
  hang).
- Exports: hostile class and dataset names go through train → CSV → report escaped.

Every case runs with a victim folder in its sandbox that nothing may touch (checked byte for byte),
and logs a security kind for ``python3 -m scripts.reliability``.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fault_harness import FAULT_LOG, Case, check_case, plant_victim, run_case
from utils.errors import UsageError, UserError, exits_cleanly

ROOT = Path(__file__).resolve().parents[1]
SWEEP = """name = "tiny"
device = "cpu"
precision = "fp32"
weights = "default"
seeds = [0]
corruption = [0.3]
rounds = 1
epochs = 2
[resources]
partition = "debug"
[datasets.digits]
lr = 0.1
wd = { base = 0.01 }
[grids.small]
ctype = "sym"
wd = "base"
datasets = ["digits"]
"""
PAYLOADS = {"newline": "a\nb", "semicolon": "a;rm -rf x", "subshell": "$(id)", "backtick": "`id`", "flag": "--flag"}


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


# Where a string can sit in a sweep file, as a function of the payload: the file's text.
SWEEP_FIELDS = {
    "name": lambda p: SWEEP.replace('name = "tiny"', f"name = {_toml(p)}"),
    "partition": lambda p: SWEEP.replace('partition = "debug"', f"partition = {_toml(p)}"),
    "grid name": lambda p: SWEEP.replace("[grids.small]", f"[grids.{_toml(p)}]"),
    "dataset table": lambda p: SWEEP.replace("[datasets.digits]", f"[datasets.{_toml(p)}]"),
    "wd setting name": lambda p: SWEEP.replace("{ base = 0.01 }", f"{{ {_toml(p)} = 0.01 }}"),
    "ctype": lambda p: SWEEP.replace('ctype = "sym"', f"ctype = {_toml(p)}"),
    "weights": lambda p: SWEEP.replace('weights = "default"', f"weights = {_toml(p)}"),
    "datasets list": lambda p: SWEEP.replace('datasets = ["digits"]', f'datasets = ["digits", {_toml(p)}]'),
}


def _setup(*steps):
    def setup(sandbox: Path) -> None:
        plant_victim(sandbox)
        for step in steps:
            step(sandbox)

    return setup


def _write(name: str, text: str):
    return lambda sandbox: (sandbox / name).write_text(text)


def _sweep(kind: str, text: str, pattern: str, name: str, threat: str = "", file: str = "s.toml") -> Case:
    """``sweep.py FILE --print-sbatch`` on a sweep file of ``text``: refused (status 2) with ``pattern``."""
    argv = [file, "--print-sbatch", "--log-dir", "logs"]
    return Case("sweep", kind, argv, pattern, 2, setup=_setup(_write(file, text)), name=name, threat=threat)


PLAIN_NAME = r"is not a plain name: use letters, digits and \. _ - only"
SWEEP_CASES = [
    *(
        _sweep("security", SWEEP_FIELDS[field](payload), PLAIN_NAME, f"sweep {field}: {label}", "sweep")
        for field in SWEEP_FIELDS
        for label, payload in PAYLOADS.items()
    ),
    *(
        _sweep(
            "security",
            SWEEP.replace('name = "tiny"', f"name = {_toml(name)}"),
            rf"name {re.escape(repr(name))} {PLAIN_NAME}",
            f"sweep name {name}",
            "outside",
        )
        for name in ("../../x", "/tmp/x", ".hidden")
    ),
    _sweep(
        "security",
        SWEEP.replace('name = "tiny"\n', ""),
        r"the file's name .* '\.x;y' is not a plain name",
        "sweep named after a hostile file name",
        "outside",
        file=".x;y.toml",
    ),
    *(
        _sweep(
            "value",
            SWEEP.replace('partition = "debug"', f"{key} = {value}"),
            rf"\[resources\]: {key} must be at least {low}, got {value}",
            f"resources {key} = {value}",
        )
        for key, value, low, flag in (
            ("mem_gb", -5, 1, "--mem"),
            ("time_min", 0, 1, "--time"),
            ("gpus_per_job", -2, 0, "--gpus-per-job"),
            ("cpus_per_job", 0, 1, "--cpus-per-job"),
        )
    ),
    *(
        _sweep("file", text, pattern, f"sweep structure: {label}")
        for label, text, pattern in (
            ("grids not a table", SWEEP.split("[resources]")[0] + "grids = 3\n", r"grids must be a table"),
            ("a grid not a table", SWEEP.split("[grids.small]")[0] + "[grids]\na = 1\n", r"grids\.a must be a table"),
            ("nested deeply", SWEEP + "[x.y.z.w.v]\nq = 1\n", r"x\.y\.z\.w\.v nests tables deeper"),
            ("a list of tables", SWEEP + "[[seedsx]]\nq = 1\n", r"seedsx holds a table"),
            ("a date", "when = 1979-05-27\n" + SWEEP, r"when is a date; give a string"),
        )
    ),
]


# -- features files ------------------------------------------------------------------------------------------


def _features(name: str, **changes):
    """A small valid features file (.pt) with some arrays replaced by ``changes`` (tensors or callables of torch)."""

    def setup(sandbox: Path) -> None:
        import torch

        generator = torch.Generator().manual_seed(0)
        x = torch.randn(40, 5, generator=generator)
        y = torch.arange(40) % 2
        arrays = {"train_features": x, "train_labels": y, "test_features": x[:10].clone(), "test_labels": y[:10]}
        arrays.update({key: value(torch, arrays) for key, value in changes.items()})
        torch.save(arrays, sandbox / name)

    return setup


TENSORS = {
    "sparse": (lambda torch, a: a["train_features"].to_sparse(), r"train_features is a sparse_coo tensor"),
    "meta": (lambda torch, a: torch.empty(40, 5, device="meta"), r"train_features is a tensor on the meta device"),
    "requires grad": (
        lambda torch, a: a["train_features"].clone().requires_grad_(),
        r"train_features is a tensor that requires grad",
    ),
    "quantized": (
        lambda torch, a: torch.quantize_per_tensor(a["train_features"], 0.1, 0, torch.qint8),
        r"train_features is a quantized tensor",
    ),
}
READERS = {  # script → (arguments before --features FILE, arguments after)
    "train_linear": ([], ["--epochs", "1", "--dist", "0", "--ctype", "sym", "--corruption", "0.2"]),
    "feature_correlation_map": ([], ["--out", "maps"]),
}
GMM_REAL = (["real"], ["--classes", "0", "1", "--M", "10", "--trials", "2", "--out", "g"])


def _label_bomb(torch, arrays):
    labels = arrays["train_labels"].clone()
    labels[3] = 2**63 - 1
    return labels


FEATURE_CASES = [
    *(
        Case(
            script,
            "file",
            [*before, "--features", "f.pt", *after],
            pattern,
            1,
            setup=_setup(_features("f.pt", train_features=make)),
            name=f"{script} features: a {label} tensor",
        )
        for script, (before, after) in READERS.items()
        for label, (make, pattern) in TENSORS.items()
    ),
    *(
        Case(
            script,
            "security",
            [*before, "--features", "f.pt", *after],
            r"train_labels hold 9223372036854775807, outside 0\.\.39",
            1,
            setup=_setup(_features("f.pt", train_labels=_label_bomb)),
            name=f"{script} features: a label of 2**63 - 1",
            threat="exhaustion",
        )
        for script, (before, after) in (*READERS.items(), ("gmm_distill", GMM_REAL))
    ),
    *(
        Case(
            script,
            "security",
            [*before, "--features", "f.pt", *after],
            r"train_features holds values up to 3(\.\d+)?e\+38, beyond what float32 arithmetic",
            1,
            setup=_setup(_features("f.pt", train_features=lambda torch, a: torch.full((40, 5), 3e38))),
            name=f"{script} features near float32's largest",
            threat="exhaustion",
        )
        for script, (before, after) in READERS.items()
    ),
    Case(
        "train_linear",
        "file",
        ["--features", "loop.npz", *READERS["train_linear"][1]],
        r"loop\.npz: too many levels of symbolic links \(a symlink loop\) \(ELOOP\)",
        1,
        setup=_setup(
            lambda s: (s / "loop.npz").symlink_to("loop2.npz"), lambda s: (s / "loop2.npz").symlink_to("loop.npz")
        ),
        name="train_linear features: a symlink loop",
    ),
]


# -- values beyond the arithmetic ------------------------------------------------------------------------------

TRAIN = ["-d", "synthetic", "--epochs", "1", "--dist", "0", "--ctype", "sym", "--corruption", "0.2"]
VALUE_CASES = [
    Case("numerical_solving", "value", ["--epsilon", "1e300", "--n", "5"], r"--epsilon 1e\+300 is too large", 2),
    Case("train_linear", "value", [*TRAIN, "--lr", "1e308"], r"--lr 1e\+308 is beyond what float32", 2),
    Case("train_linear", "value", [*TRAIN, "--wd", "1e300"], r"--wd 1e\+300 is beyond what float32", 2),
    Case(
        "train_linear",
        "value",
        [*TRAIN, "--select", "val", "--val-fraction", "0.999"],
        r"--val-fraction 0\.999 holds out \d+ of the \d+ training rows, leaving 1: each part needs at least",
        2,
    ),
]


def test_a_diverging_run_is_an_error_and_is_not_published(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(FAULT_LOG, raising=False)  # training's own lines come first: not a before-any-work case
    argv = ["--features", "f.pt", *READERS["train_linear"][1], "--lr", "1e30"]
    scaled = {key: lambda torch, a, key=key: a[key] * 1e6 for key in ("train_features", "test_features")}
    large = _features("f.pt", **scaled)  # one step of lr 1e30 takes the logits beyond float32
    case = Case("train_linear", "state", argv, "", 1, setup=large, name="a diverging run is not published")
    outcome = run_case(case, tmp_path, capsys)
    assert outcome.status == 1 and not outcome.traceback, outcome.stderr
    last = outcome.stderr.splitlines()[-1]
    assert re.fullmatch(r"error: training diverged .*; lower --lr, or rescale the features", last), last
    published = [p for p in tmp_path.rglob("*") if p.name in ("run.json", "best.ckpt", "last.ckpt")]
    assert published == [] and not (tmp_path / "results").exists(), published


# -- special files as outputs ----------------------------------------------------------------------------------


def _device(sandbox: Path) -> None:
    try:
        os.mknod(sandbox / "out.csv", 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a twin of /dev/null
    except PermissionError:
        pytest.skip("creating a device node needs root")


def _fifo(sandbox: Path) -> None:
    os.mkfifo(sandbox / "out.csv")


def _socket(sandbox: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sandbox / "out.csv"))
    server.close()  # the socket file stays


SPECIAL_CASES = [
    Case(
        "train_linear",
        "security",
        [*TRAIN, "--csv", "out.csv"],
        rf"--csv out\.csv is a {kind}, not a regular file",
        1,
        setup=_setup(make),
        name=f"--csv names a {kind}",
        threat="special",
    )
    for make, kind in ((_device, "character device"), (_fifo, r"FIFO \(named pipe\)"), (_socket, "socket"))
]

CASES = [*SWEEP_CASES, *FEATURE_CASES, *VALUE_CASES, *SPECIAL_CASES]


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fault(case, tmp_path, capsys):
    outcome = check_case(case, tmp_path, capsys)
    assert not outcome.victim_touched and (tmp_path / "victim" / "notes.txt").is_file() or case.kind != "security"
    if case.script == "sweep":
        assert outcome.stdout == "", "a refused sweep file generates no script"


def test_the_payloads_are_refused_only_for_being_payloads(tmp_path, capsys):
    """The unmodified sweep file prints its scripts, and every string of it appears where expected: the
    refusals above are the payloads', and a generated script holds nothing but plain names."""
    pytest.importorskip("submitit")
    import sweep

    (tmp_path / "s.toml").write_text(SWEEP)
    os.chdir(tmp_path)
    assert sweep.main(["s.toml", "--print-sbatch", "--log-dir", "logs"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --job-name=tiny-chains" in script and "#SBATCH --partition=debug" in script
    hostile = [text for text in PAYLOADS.values() if text in script]
    assert not hostile and "$(" not in script and "`" not in script


# -- exports -----------------------------------------------------------------------------------------------

HOSTILE_DATASET = "=HYPERLINK(x)|a&b_%$#{}~^@"
HOSTILE_CLASSES = ["=cmd|' /C calc'!A0", "@SUM(1+1)", "+1|2", "-2+3", "\tx", "$\\notacommand$"]


def _hostile_features(sandbox: Path) -> None:
    plant_victim(sandbox)
    rng = np.random.default_rng(0)
    k = len(HOSTILE_CLASSES)
    x = rng.normal(size=(12 * k, 4)).astype(np.float32)
    y = np.arange(12 * k) % k
    np.savez(
        sandbox / f"{HOSTILE_DATASET}.npz",
        train_features=x,
        train_labels=y,
        test_features=x[: 2 * k],
        test_labels=y[: 2 * k],
        class_names=np.array(HOSTILE_CLASSES),
    )


def _formula_cells(path: Path) -> list[str]:
    with open(path, newline="") as stream:
        cells = [cell for row in csv.reader(stream) for cell in row]
    return [cell for cell in cells if cell[:1] in ("=", "+", "@", "\t", "\r") or re.match(r"-(?!\d)", cell)]


def test_hostile_names_go_through_train_csv_and_report_escaped(tmp_path, capsys):
    """Train on a features file whose dataset and class names are formulas, LaTeX and Markdown: the CSV holds
    no cell a spreadsheet would run, reads back the names unchanged, and the report's tables stay tables."""
    from training.results import read_csv

    features = f"{HOSTILE_DATASET}.npz"
    train = Case(
        "train_linear",
        "security",
        ["--features", features, "--epochs", "2", "--dist", "0", "--ctype", "sym", "--corruption", "0.2"],
        "",
        setup=_hostile_features,
        name="hostile dataset name through train to the CSV",
        threat="export",
    )
    outcome = run_case(train, tmp_path, capsys)
    assert outcome.status == 0 and not outcome.victim_touched, outcome.stderr
    results = tmp_path / "results" / "sym.csv"
    assert _formula_cells(results) == []
    rows, damaged = read_csv(results)
    assert not damaged and {row["Dataset"] for row in rows} == {HOSTILE_DATASET}
    from training.names import is_safe

    assert all(is_safe(row["Run"]) and row["Run"].startswith("HYPERLINK_x_a_b_") for row in rows)  # cleaned, hashed

    report = Case(
        "report",
        "security",
        ["--results", "results/sym.csv", "--out", "rep"],
        "",
        name="hostile dataset name through the report",
        threat="export",
    )
    outcome = run_case(report, tmp_path, capsys)
    assert outcome.status == 0 and not outcome.victim_touched, outcome.stderr
    (markdown,) = (tmp_path / "rep").glob("*_table.md")
    (latex,) = (tmp_path / "rep").glob("*_table.tex")
    lines = markdown.read_text().splitlines()
    tables = re.findall(r"(?:^\|.*\n)+", markdown.read_text(), flags=re.MULTILINE)
    for table in tables:  # a '|' in a name is escaped: every row of a table has its header's columns
        assert len({len(re.split(r"(?<!\\)\|", row)) for row in table.splitlines()}) == 1, table
    assert any(r"\|a&b" in line for line in lines if line.startswith("###"))
    tex = latex.read_text()
    caption = next(line for line in tex.splitlines() if line.startswith(r"\caption"))
    assert r"\&b\_\%\$\#\{\}\textasciitilde{}\textasciicircum{}" in caption
    label = next(line for line in tex.splitlines() if line.startswith(r"\label"))
    assert re.fullmatch(r"\\label\{[A-Za-z0-9:._+-]+\}", label), label


@pytest.mark.slow  # four figures in two formats: seconds
def test_hostile_class_names_in_figures_are_text_not_mathtext(tmp_path, capsys):
    case = Case(
        "feature_correlation_map",
        "security",
        ["--features", f"{HOSTILE_DATASET}.npz", "--out", "maps"],
        "",
        setup=_hostile_features,
        name="hostile class names in the correlation map's figures and table",
        threat="names",
    )
    outcome = run_case(case, tmp_path, capsys)
    assert outcome.status == 0 and not outcome.traceback and not outcome.victim_touched, outcome.stderr
    (table,) = (tmp_path / "maps").glob("*.md")
    row = table.read_text().splitlines()[-1]
    assert row.startswith(r"| =HYPERLINK(x)\|a&b") and len(re.split(r"(?<!\\)\|", row)) == 10


# -- the escaping functions themselves --------------------------------------------------------------------------


def test_csv_cells_are_neutralised_and_read_back_unchanged():
    from utils.escaping import csv_cell, csv_value

    for text in ("=1+1", "+1|2", "-x", "@A1", "\tx", "\rx", "'=1", "'", "''", "plain", "x=1", ""):
        cell = csv_cell(text)
        assert not str(cell).startswith(("=", "+", "-", "@", "\t", "\r")), cell
        assert csv_value(cell) == text
    for number in (-0.5, "-0.5", "-3", "1e-3", 7):
        assert csv_cell(number) == number  # a negative number is a number, not a formula


# -- output paths, error kinds ------------------------------------------------------------------------------


def test_no_write_primitive_replaces_a_special_file(tmp_path):
    from utils import atomic

    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UserError, match=r"pipe is a FIFO \(named pipe\), not a regular file"):
        atomic.write_text(tmp_path / "pipe", "x")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"], "no temporary file left"


@pytest.mark.parametrize(
    "error, line",
    [
        (OverflowError("int too large to convert to float"), r"a number is too large to compute with"),
        (RecursionError("maximum recursion depth exceeded"), r"an input is nested too deeply"),
        (RuntimeError("Symlink loop from '/x/y'"), r"cannot use /x/y: too many levels of symbolic links"),
        (OSError(errno.ELOOP, "Too many levels of symbolic links", "/x/y"), r"\(a symlink loop\) \(ELOOP\)"),
        (
            RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried to allocate 4 bytes."),
            r"out of memory; use smaller sizes",
        ),
        (ImportError("libtorch_cpu.so: failed to map segment from shared object"), r"out of memory;.*libtorch_cpu"),
    ],
)
def test_errors_of_these_kinds_are_one_line(error, line, capsys):
    @exits_cleanly
    def main(argv=None):
        raise error

    assert main([]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.match(rf"error: .*{line}", err), err


def test_a_killed_writers_temporary_files_are_removed_by_the_next_write_and_nothing_else(tmp_path):
    """Leftovers of a dead process (a pid no process has) go; a link and a folder with the same kind of name,
    a live process's temporary file and the victim folder the link points into stay."""
    from utils import atomic

    victim = plant_victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    dead = 4194400  # above Linux's largest pid (2**22)
    stale = out / f".r.json.{atomic.HOST}-{dead}.abc123.tmp"
    stale.write_text("half")
    link = out / f".r.json.{atomic.HOST}-{dead}.link.tmp"
    link.symlink_to(victim / "notes.txt")
    folder = out / f".r.json.{atomic.HOST}-{dead}.dir.tmp"
    folder.mkdir()
    alive = out / f".r.json.{atomic.HOST}-{os.getppid()}.live.tmp"
    alive.write_text("in progress")
    other = out / f".other.json.{atomic.HOST}-{dead}.abc.tmp"
    other.write_text("another file's")
    atomic.write_json(out / "r.json", {"ok": True})
    assert not stale.exists() and link.is_symlink() and folder.is_dir() and alive.exists() and other.exists()
    assert (victim / "notes.txt").read_text() == "the user's own notes\n"
    assert json.loads((out / "r.json").read_text()) == {"ok": True}


def test_slurm_without_a_scheduler_is_one_line_and_creates_nothing(tmp_path, capsys, monkeypatch):
    (tmp_path / "s.toml").write_text(SWEEP)
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    case = Case(
        "sweep",
        "value",
        ["s.toml", "--launcher", "slurm", "-c", "store", "--csv-dir", "res"],
        r"--launcher slurm needs SLURM's sbatch and scontrol, and this machine has none",
        1,
    )
    check_case(case, tmp_path, capsys)


def test_the_schema_refuses_names_and_keeps_plain_ones():
    from sweeping.schema import check_name

    for name in ("fig2", "paper.v1", "a_b-c", "A" * 64):
        assert check_name("f", "name", name) == name
    for name in ("", ".x", "-x", "a/b", "a b", "A" * 65, "é", "a\n", 3):
        with pytest.raises(UsageError):
            check_name("f", "name", name)


# -- local sweep workers stopped -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "signal_name, status, word",
    [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")],
    ids=["sweep.py-SIGINT", "sweep.py-SIGTERM"],  # scripts.reliability counts these under sweep
)
def test_signal_to_a_parallel_sweep_stops_its_workers_quietly(tmp_path, signal_name, status, word):
    """The whole process group gets the signal (a terminal's Ctrl-C, a scheduler's SIGTERM): the launcher and its
    workers stop without a traceback, and no run lock or temporary run is left."""
    import signal

    long = SWEEP.replace("epochs = 2", "epochs = 3000").replace("seeds = [0]", "seeds = [0, 1]")
    (tmp_path / "s.toml").write_text(long + '[grids.other]\nctype = "asym"\nwd = "base"\ndatasets = ["digits"]\n')
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "sweep.py"), "s.toml", "--parallel", "2", "-c", "store", "--csv-dir", "res"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "store").glob(".runs/*")):
        time.sleep(0.2)  # until both workers train
    time.sleep(1.0)
    os.killpg(process.pid, getattr(signal, signal_name))
    out, err = process.communicate(timeout=120)
    assert process.returncode == status, (out, err)
    assert "Traceback" not in err and err.splitlines()[-1] == word, err
    leftovers = [p for p in (tmp_path / "store").rglob("*") if ".lock" in p.name or p.parent.name == ".runs"]
    assert leftovers == [], leftovers


def test_a_script_started_with_stdout_closed_ends_without_a_traceback(monkeypatch, capsys):
    """``script >&-``: Python has no sys.stdout at all; the script's exit is still its status, quietly."""
    from utils.errors import run_script

    monkeypatch.setattr(sys, "stdout", None)
    with pytest.raises(SystemExit) as exit:
        run_script(lambda argv: print("lost") or 0)
    assert exit.value.code == 0 and capsys.readouterr().err == ""
