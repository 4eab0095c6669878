"""A local sweep worker: one job in a fresh interpreter, ``python3 -m sweeping.worker``.

The launcher writes the pickled ``(job, needs)`` to the worker's stdin; the worker runs it with
:func:`training.jobs.run_job` and writes the pickled :class:`~training.jobs.JobResult` to stdout.
Only the training library is imported (a pool of ``multiprocessing`` would re-import the script
that started it in every worker). Its own stderr is the job's log; nothing else goes to stdout.
"""

from __future__ import annotations

import pickle
import sys


def main() -> int:
    from training.jobs import run_job

    work, needs = pickle.load(sys.stdin.buffer)
    result = run_job(work, *needs)
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
