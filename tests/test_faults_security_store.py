"""Security faults of the run store: symlinks planted at every level, forged and stale locks, forged run records
and hostile names never make the store delete, write or read outside itself, hang, or print a traceback.

Every planted link leads to a *victim* folder outside the store, checked byte for byte (names, bytes, modes)
after the command. Refusals go through the fault harness (kind ``security``), so ``scripts.reliability``
counts them. Fast in-process cases run in the default tier; subprocess campaigns (a real chain waiting on
forged locks, with a timeout) in the slow tier.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import runs
import train_linear
from tests.fault_harness import Case, check_case, run_case
from tests.store_factory import publish, toy_config
from training import locks, results
from training.names import MAX_LENGTH, is_safe, safe_name
from training.store import RunStore, State
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ["-d", "synthetic", "--epochs", "2", "--ctype", "sym", "--corruption", "0.4", "--seed", "0", "--dist", "0"]
STORE = ["-c", "ck", "--csv", "r.csv"]


# -- the victim: a folder outside the store that nothing may touch -------------------------------------


def plant_victim(sandbox: Path) -> Path:
    victim = sandbox / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "notes.txt").write_bytes(b"not the project's\n")
    (victim / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (victim / "run.json").write_text('{"not": "a run"}')
    os.chmod(victim / "sub" / "data.bin", 0o600)
    return victim


def fingerprint(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every name under ``folder`` with its mode and content (a link's text), by lstat."""
    found = {".": (os.lstat(folder).st_mode, b"")}
    for path in sorted(folder.rglob("*")):
        mode = os.lstat(path).st_mode
        content = os.readlink(path).encode() if stat.S_ISLNK(mode) else path.read_bytes() if stat.S_ISREG(mode) else b""
        found[str(path.relative_to(folder))] = (mode, content)
    return found


def train(sandbox: Path, *extra: str) -> int:
    previous = Path.cwd()
    os.chdir(sandbox)
    try:
        return train_linear.main([*TEACHER, *STORE, *extra])
    finally:
        os.chdir(previous)


def runs_cli(sandbox: Path, *argv: str) -> int:
    previous = Path.cwd()
    os.chdir(sandbox)
    try:
        return runs.main([*argv[:1], "-c", "ck", *argv[1:]])
    finally:
        os.chdir(previous)


@pytest.fixture
def trained(tmp_path):
    """A sandbox with one trained teacher in ./ck and its row in ./r.csv, plus the victim folder."""
    assert train(tmp_path) == 0
    return tmp_path, plant_victim(tmp_path), RunStore(tmp_path / "ck").entries()[0]


# -- symlinks planted at each level ------------------------------------------------------------------------

COMMANDS = {
    "train": ("train_linear", [*TEACHER, *STORE]),
    "--force": ("train_linear", [*TEACHER, *STORE, "--force"]),
    "--rebuild-csv": ("train_linear", [*TEACHER, *STORE, "--rebuild-csv"]),
    "clean": ("runs", ["clean", "-c", "ck"]),
    "clean --damaged": ("runs", ["clean", "--damaged", "-c", "ck"]),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_run_entry_leading_outside_the_store_is_never_followed(trained, command, capsys):
    sandbox, victim, entry = trained
    before = fingerprint(victim)
    entry.unlink()
    entry.symlink_to(victim)
    lookup = RunStore(sandbox / "ck").inspect(entry)
    assert lookup.state is State.DAMAGED and "outside the store" in lookup.problem
    script, argv = COMMANDS[command]
    case = Case(
        script,
        "security",
        argv,
        r"is a symlink to .* outside the store",
        name=f"run entry symlink: {command}",
        threat="symlinks",
    )
    if command in ("train", "--force"):  # refused: the store does not replace a link it did not make
        RunStore(sandbox / "ck").sweep()  # the run's own folder, now unpublished, goes first (as any command does)
        check_case(case, sandbox, capsys)
    else:
        outcome = run_case(case, sandbox, capsys)
        assert outcome.status == 0 and not outcome.traceback, outcome.stderr
    assert fingerprint(victim) == before
    assert os.path.lexists(entry) is (command != "clean --damaged")  # clean --damaged unlinks the link only


@pytest.mark.parametrize("level", [".runs", ".locks"])
@pytest.mark.parametrize("command", ["train", "clean", "clean --damaged", "list"])
def test_runs_or_locks_folder_as_a_symlink_is_refused_in_one_line(tmp_path, level, command, capsys):
    victim = plant_victim(tmp_path)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / level).symlink_to(victim)
    before = fingerprint(victim)
    script, argv = (
        ("train_linear", [*TEACHER, *STORE]) if command == "train" else ("runs", [*command.split(), "-c", "ck"])
    )
    check_case(
        Case(script, "security", argv, rf"{level} is a symlink", name=f"{level} symlink: {command}", threat="symlinks"),
        tmp_path,
        capsys,
    )
    assert fingerprint(victim) == before


def test_a_symlinked_file_inside_a_run_makes_it_damaged_and_is_unlinked_not_followed(trained, capsys):
    sandbox, victim, entry = trained
    before = fingerprint(victim)
    folder = RunStore(sandbox / "ck").folder_of(entry)
    (folder / "best.ckpt").unlink()
    (folder / "best.ckpt").symlink_to(victim / "sub" / "data.bin")
    (folder / "extra").symlink_to(victim)
    lookup = RunStore(sandbox / "ck").inspect(entry)
    assert lookup.state is State.DAMAGED and "best.ckpt is not a regular file" in lookup.problem
    assert train(sandbox, "--force") == 0  # retrained; the replaced folder (and its links) removed
    assert not folder.exists() and fingerprint(victim) == before
    assert RunStore(sandbox / "ck").inspect(entry).state is State.COMPLETE


def test_run_json_as_a_symlink_is_not_read_through(trained):
    sandbox, victim, entry = trained
    folder = RunStore(sandbox / "ck").folder_of(entry)
    (folder / "run.json").unlink()
    (folder / "run.json").symlink_to(victim / "run.json")
    lookup = RunStore(sandbox / "ck").inspect(entry)
    assert lookup.state is State.DAMAGED and "not a regular file" in lookup.problem


def test_an_entry_pointing_at_another_runs_folder_never_loses_that_run(tmp_path):
    root = tmp_path / "ck"
    first, second = toy_config(seed=0), toy_config(seed=1)
    publish(root, first, 50.0)
    kept = publish(root, second, 60.0)
    store = RunStore(root)
    entry = root / first.run_name()
    entry.unlink()
    entry.symlink_to(os.path.join(".runs", kept.folder.name))  # first's entry now names second's folder
    assert store.find(first).state is State.DAMAGED
    assert "describes another run" in store.inspect(entry).problem
    publish(root, first, 55.0)  # the retrained first replaces its entry: second's folder must stay
    assert store.find(second).state is State.COMPLETE and store.find(first).state is State.COMPLETE
    entry.unlink()
    entry.symlink_to(os.path.join(".runs", kept.folder.name))
    store.remove(first.run_name())  # clean --damaged of the forged entry unlinks it only
    assert store.find(second).state is State.COMPLETE and not os.path.lexists(entry)


def test_the_store_root_may_be_a_symlink_to_another_disk(tmp_path, capsys):
    disk = tmp_path / "big-disk" / "store"
    disk.mkdir(parents=True)
    (tmp_path / "ck").symlink_to(disk)
    assert train(tmp_path) == 0
    assert train(tmp_path, "--force") == 0
    assert runs_cli(tmp_path, "clean", "--damaged") == 0
    capsys.readouterr()
    assert runs_cli(tmp_path, "list") == 0
    assert "1 complete" in capsys.readouterr().out
    assert len(list((disk / ".runs").iterdir())) == 1  # the replaced run's folder went, on the other disk


def test_clean_spares_a_publishers_fresh_link_and_a_path_outside_is_no_run(tmp_path):
    root = tmp_path / "ck"
    record = publish(root, toy_config(), 50.0)
    fresh, old = root / ".a.1234.link", root / ".b.5678.link"
    fresh.symlink_to(os.path.join(".runs", record.folder.name))
    old.symlink_to(tmp_path)
    os.utime(old, (time.time() - 60, time.time() - 60), follow_symlinks=False)
    store = RunStore(root)
    assert store.sweep() == [old] and os.path.lexists(fresh) and tmp_path.is_dir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert store.inspect(root / ".." / "elsewhere").state is State.DAMAGED


# -- names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".hidden-x", "..", ".", "", "a/b", "../x", "a..b", "-x", "a b", "é", "x" * 300])
def test_unsafe_names_are_cleaned_and_hashed(name):
    made = safe_name(name)
    assert is_safe(made) and len(made) <= MAX_LENGTH and made != name
    assert safe_name(name + "!") != made  # different names never clean to one


def test_safe_names_are_kept_as_they_are():
    name = "digits-identity-cc-eta0.5-seed0-teacher-1a2b3c4d"
    assert safe_name(name) == name and toy_config().run_name() == toy_config().run_name()


@pytest.mark.parametrize("stem", [".hidden", ".."])
def test_a_features_file_named_like_a_hidden_file_or_dotdot_gives_a_findable_run(tmp_path, stem, capsys):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / f"{stem}.npz",
        train_features=rng.normal(size=(30, 4)).astype(np.float32),
        train_labels=np.arange(30) % 3,
        test_features=rng.normal(size=(9, 4)).astype(np.float32),
        test_labels=np.arange(9) % 3,
    )
    argv = ["--features", f"{stem}.npz", "--epochs", "2", "--ctype", "sym", "--corruption", "0.4", "--dist", "0"]
    argv += ["--seed", "0", *STORE]
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert train_linear.main(argv) == 0
        capsys.readouterr()
        assert train_linear.main([*argv, "--dry-run"]) == 0
        assert "1 of 1 runs done, 0 to run" in capsys.readouterr().out
        assert runs.main(["list", "-c", "ck"]) == 0
        listed = capsys.readouterr().out
        assert "1 complete" in listed and "complete " in listed
        assert runs.main(["clean", "-c", "ck"]) == 0
    finally:
        os.chdir(previous)
    entries = RunStore(tmp_path / "ck").entries()
    assert len(entries) == 1 and is_safe(entries[0].name) and entries[0].resolve().is_dir()


@pytest.mark.parametrize("name", ["", "/etc", "../victim", "..", ".runs", "ck/../victim", "nonexistent"])
def test_show_accepts_only_run_names(tmp_path, name, capsys):
    publish(tmp_path / "ck", toy_config(), 50.0)
    plant_victim(tmp_path)
    sandbox = tmp_path
    check_case(
        Case("runs", "security", ["show", "-c", "ck", name], r"no run", 2, name=f"show {name!r}", threat="outside"),
        sandbox,
        capsys,
    )


def test_clean_of_a_store_not_made_yet_is_a_no_op(tmp_path, capsys):
    assert runs_cli(tmp_path, "clean") == 0
    assert "nothing to clean" in capsys.readouterr().out and not (tmp_path / "ck").exists()


# -- forged and stale locks ------------------------------------------------------------------------------


def forge(path: Path, content: str | dict, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    moment = time.time() - age_s
    os.utime(path, (moment, moment))
    return path


ALIVE_ELSEWHERE = {"host": "another-host.example", "pid": 4242, "token": "t"}
FORGED = {
    "pid 1 on this host": ({"host": locks.HOST, "pid": 1, "token": "t"}, 0.0),
    "pid 0": ({"host": locks.HOST, "pid": 0, "token": "t"}, 0.0),
    "pid -1": ({"host": "another-host.example", "pid": -1, "token": "t"}, 0.0),
    "pid 2**70": ({"host": locks.HOST, "pid": 2**70, "token": "t"}, 0.0),
    "pid as text": ({"host": locks.HOST, "pid": "12", "token": "t"}, 0.0),
    "garbage": ("\x00\xff{not json", 5.0),
    "a JSON list": ("[1, 2]", 5.0),
    "deeply nested": ("[" * 100000, 5.0),
    "dead pid on this host": ({"host": locks.HOST, "pid": 2**31 - 1, "token": "t"}, 0.0),
    "this pid, another start time": ({"host": locks.HOST, "pid": os.getpid(), "start": -5, "token": "t"}, 0.0),
    "another host, silent": (ALIVE_ELSEWHERE, locks.STALE_AFTER_S + 5),
    "another host, far future": (ALIVE_ELSEWHERE, -(locks.STALE_AFTER_S + 600)),
}


@pytest.mark.parametrize("forged", FORGED)
def test_forged_and_dead_locks_are_stale(tmp_path, forged, caplog):
    content, age = FORGED[forged]
    path = forge(tmp_path / "x.lock", content, age)
    assert locks.is_stale(path), forged
    assert locks.try_lock(path) is not None  # broken and taken, without waiting
    if "future" in forged:
        assert "in the future" in caplog.text


@pytest.mark.parametrize(
    "content, age",
    [(ALIVE_ELSEWHERE, 5.0), (ALIVE_ELSEWHERE, -5.0), ("", 0.0)],
    ids=["another host, fresh", "another host, slightly ahead", "being written"],
)
def test_live_and_just_created_locks_are_not_stale(tmp_path, content, age):
    assert not locks.is_stale(forge(tmp_path / "x.lock", content, age))


def test_a_lock_this_process_holds_is_live_and_records_its_start_time(tmp_path):
    lock = locks.try_lock(tmp_path / "x.lock")
    try:
        owner = locks.read_owner(lock.path)
        assert owner["start"] == locks.start_time(os.getpid()) and not locks.is_stale(lock.path)
    finally:
        lock.release()


def test_waiting_names_the_holder_and_gives_up_after_the_bound(tmp_path):
    path = forge(tmp_path / "r.csv.lock", {**ALIVE_ELSEWHERE, "since": time.time()})
    with pytest.raises(UserError, match=r"gave up after 0\.2 s waiting for .*process 4242 on another-host\.example"):
        with locks.locked(path, poll_s=0.05, limit_s=0.2):
            pass


def test_the_stale_limit_comes_from_the_environment(tmp_path, monkeypatch):
    path = forge(tmp_path / "x.lock", ALIVE_ELSEWHERE, 3.0)
    assert not locks.is_stale(path)
    monkeypatch.setenv(locks.STALE_ENV, "2")
    assert locks.is_stale(path)
    monkeypatch.setenv(locks.STALE_ENV, "nan")
    with pytest.raises(UserError, match=locks.STALE_ENV):
        locks.is_stale(path)


def test_the_csv_lock_follows_the_same_rule(tmp_path):
    record = publish(tmp_path / "ck", toy_config(), 50.0)
    forge(results.lock_path(tmp_path / "r.csv"), {"host": locks.HOST, "pid": 1, "token": "t"})
    results.upsert(tmp_path / "r.csv", [record])  # pid 1 never holds a lock: broken, not waited on
    assert record.name in (tmp_path / "r.csv").read_text()


def test_a_forged_run_lock_never_hides_a_run_or_breaks_listing(trained, capsys):
    sandbox, _, entry = trained
    forge(sandbox / "ck" / ".locks" / "synthetic-forged.lock", {"host": locks.HOST, "pid": 2**70})
    capsys.readouterr()
    assert runs_cli(sandbox, "list") == 0 and "1 complete" in capsys.readouterr().out
    assert runs_cli(sandbox, "clean") == 0
    assert not (sandbox / "ck" / ".locks" / "synthetic-forged.lock").exists()


# -- forged run records ---------------------------------------------------------------------------------

RECORDS = {
    "test_acc NaN": lambda raw: raw["metrics"].update(test_acc=float("nan")),
    "test_acc 1e999": lambda raw: raw["metrics"].update(test_acc="1e999"),
    "test_acc true": lambda raw: raw["metrics"].update(test_acc=True),
    "epochs 2.5": lambda raw: raw["metrics"].update(epochs=2.5),
    "ece infinite": lambda raw: raw["metrics"].update(ece="-1e999"),
    "files a list": lambda raw: raw.update(files=["best.ckpt"]),
    "files of the wrong shape": lambda raw: raw["files"].update({"best.ckpt": 12}),
    "deep nesting": lambda raw: raw.update(provenance="DEEP"),
    "corruption as text": lambda raw: raw["config"].update(corruption="0.5"),
    "another run's name": lambda raw: raw.update(run="synthetic-other"),
    "format true": lambda raw: raw.update(format=True),
}


@pytest.mark.parametrize("forged", RECORDS)
def test_a_forged_run_record_is_damaged_never_complete(tmp_path, forged, capsys):
    record = publish(tmp_path / "ck", toy_config(), 50.0)
    path = record.folder / "run.json"
    raw = json.loads(path.read_text())
    RECORDS[forged](raw)
    text = json.dumps(raw).replace('"1e999"', "1e999").replace('"-1e999"', "-1e999")
    path.write_text(text.replace('"DEEP"', "[" * 50000 + "]" * 50000))
    store = RunStore(tmp_path / "ck")
    assert store.find(toy_config()).state is State.DAMAGED
    assert store.records() == []
    assert runs_cli(tmp_path, "list") == 0
    assert "damaged" in capsys.readouterr().out
    assert runs_cli(tmp_path, "clean", "--damaged") == 0
    assert store.entries() == []


# -- subprocess campaigns ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "on_run, on_csv",
    [("pid 1 on this host", "another host, far future"), ("pid 2**70", "garbage")],
)
def test_a_chain_on_forged_run_and_csv_locks_finishes(tmp_path, on_run, on_csv, capsys):
    """A real training process meets forged locks on its run and on its CSV: it breaks them and finishes."""
    victim = plant_victim(tmp_path)
    before = fingerprint(victim)
    capsys.readouterr()
    assert train(tmp_path, "--dry-run") == 0
    name = next(word for word in capsys.readouterr().out.split() if word.startswith("synthetic-"))
    forge(tmp_path / "ck" / ".locks" / f"{name}.lock", *FORGED[on_run])
    forge(tmp_path / "r.csv.lock", *FORGED[on_csv])
    done = subprocess.run(
        [sys.executable, str(ROOT / "train_linear.py"), *TEACHER, *STORE],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert name in (tmp_path / "r.csv").read_text()
    assert fingerprint(victim) == before


@pytest.mark.slow
def test_runs_cli_on_a_hostile_store_in_a_subprocess(tmp_path):
    """Every level planted at once, then list, clean and clean --damaged as a user would run them."""
    victim = plant_victim(tmp_path)
    before = fingerprint(victim)
    root = tmp_path / "ck"
    publish(root, toy_config(seed=0), 50.0)
    publish(root, toy_config(seed=1), 60.0)
    (root / "synthetic-planted-link").symlink_to(victim)
    (root / ".runs" / "planted.abc").symlink_to(victim)
    forge(root / ".locks" / "x.lock", {"host": socket.gethostname(), "pid": 2**70})
    (root / ".locks" / "y.lock").symlink_to(victim / "notes.txt")
    for argv in (["list"], ["clean"], ["clean", "--damaged"], ["list"]):
        done = subprocess.run(
            [sys.executable, str(ROOT / "runs.py"), *argv, "-c", "ck"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and not done.stderr, done.stderr
    assert "2 complete" in done.stdout and "damaged" not in done.stdout
    assert fingerprint(victim) == before
    assert not list(root.glob(".locks/*")) and not list(root.glob(".runs/planted*"))  # links unlinked
