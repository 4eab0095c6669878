"""The one check of what a sweep's jobs ask of a scheduler, whether the values come from ``sweep.py``'s flags
(``--cpus-per-job``, ``--gpus-per-job``, ``--mem``, ``--time``, ``--partition``) or from a sweep file's
``[resources]`` table: the same bounds, the same message, named by the flag or by the file's key.

Standard library only: the command line is checked before anything heavy is imported.
"""

from __future__ import annotations

import re
from typing import Mapping

from utils.errors import UsageError

FLAGS = {
    "cpus_per_job": "--cpus-per-job",
    "gpus_per_job": "--gpus-per-job",
    "mem_gb": "--mem",
    "time_min": "--time",
    "partition": "--partition",
}
LEAST = {"cpus_per_job": 1, "gpus_per_job": 0, "mem_gb": 1, "time_min": 1}
MOST = 2**31 - 1  # SLURM keeps these counts in 32-bit fields; more is a typo, not a request
# A partition name, or several separated by commas (sbatch --partition a,b): what SLURM accepts, nothing a shell reads.
PARTITION = re.compile(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*")


def check_resources(values: Mapping[str, object], where: str | None = None) -> None:
    """Raise a :class:`UsageError` for the first value out of bounds; ``None`` values are not set.

    ``where`` None: the values are flags (``--mem must be at least 1, got 0``); else the place of a sweep
    file's table (``x.toml [resources]: mem_gb must be at least 1, got 0``).
    """
    for key, value in values.items():
        if value is None:
            continue
        name = FLAGS[key] if where is None else f"{where}: {key}"
        if key == "partition":
            if not isinstance(value, str) or not PARTITION.fullmatch(value):
                raise UsageError(
                    f"{name} must be a SLURM partition name (letters, digits, _ . -; several separated by "
                    f"commas), got {value!r}"
                )
        elif value < LEAST[key]:
            raise UsageError(f"{name} must be at least {LEAST[key]}, got {value}")
        elif value > MOST:
            raise UsageError(f"{name} must be at most {MOST}, got {value}")
