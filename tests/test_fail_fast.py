"""A mistake on the command line fails before the heavy imports: no script imports torch or torchvision to
parse and validate its flags, so an unknown dataset, architecture or bad value is a one-line error at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (script, argv): each a mistake that parsing or validation must catch (exit status 2).
MISTAKES = [
    ("train_linear", ["-d", "cifar"]),
    ("train_linear", ["--arch", "resnet999"]),
    ("train_linear", ["--weights", "NO_SUCH_WEIGHTS"]),
    ("train_linear", ["--lr", "-1"]),
    ("train_linear", ["--optimizer", "lbfgs", "--wd", "0"]),
    ("report", ["--wd", "-1"]),
    ("report", ["--val-fraction", "1.5"]),
    ("plot_softmax_simplex", ["-d", "cifar"]),
    ("plot_softmax_simplex", ["--arch", "no_such_net"]),
    ("plot_softmax_simplex", ["--epochs", "0"]),
    ("runs", ["list", "--q", "2"]),
    ("sweep", ["sweeps/embedded.toml", "--device", "tpu"]),
    ("sweep", ["sweeps/embedded.toml", "--epochs", "0"]),
    ("feature_correlation_map", ["-d", "cifar"]),
    ("feature_correlation_map", ["--arch", "no_such_net"]),
    ("numerical_solving", ["--k", "1"]),
    ("gmm_distill", ["theory", "--rho", "2"]),
]

# One process runs every mistake (a process per script would spend seconds starting Python); torch, once
# imported, stays in sys.modules, so the first script that imports it is the one named.
PROBE = """
import contextlib, importlib, io, json, sys
found = []
for script, argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = importlib.import_module(script).main(argv)
        except SystemExit as stop:
            code = stop.code
    heavy = sorted(name for name in ("torch", "torchvision") if name in sys.modules)
    found.append([script, argv, code, err.getvalue(), heavy])
print(json.dumps(found))
"""


def test_mistakes_fail_without_importing_torch():
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(MISTAKES)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for script, argv, code, err, heavy in json.loads(result.stdout):
        command = f"{script}.py {' '.join(argv)}"
        assert code == 2, f"{command}: exit status {code}, stderr {err!r}"
        assert err.startswith("error: ") and err.count("\n") == 1, f"{command}: not one line: {err!r}"
        assert not heavy, f"{command} imported {', '.join(heavy)} before failing"
