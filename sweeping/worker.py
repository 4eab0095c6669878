"""A local sweep worker: one job in a fresh interpreter, ``python3 -m sweeping.worker``.

The launcher writes the pickled ``(job, needs)`` to the worker's stdin; the worker runs it with
:func:`training.jobs.run_job` and writes the pickled :class:`~training.jobs.JobResult` to stdout.
Only the training library is imported (a pool of ``multiprocessing`` would re-import the script
that started it in every worker). Its own stderr is the job's log; nothing else goes to stdout. When the
launcher stops it (SIGTERM, or Ctrl-C reaching the whole process group), the job unwinds (no lock, no
temporary run left) and the worker exits 143 or 130 without a traceback: the launcher says what happened.
"""

from __future__ import annotations

import pickle
import sys

from utils.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, signal_handlers


def main() -> int:
    """Run the job; a Ctrl-C or SIGTERM (the launcher stopping) ends it with 130 or 143 and no traceback."""
    try:
        with signal_handlers():  # from the first line, so that a stop while torch loads also unwinds quietly
            from training.jobs import run_job

            work, needs = pickle.load(sys.stdin.buffer)
            result = run_job(work, *needs)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Terminated:
        return EXIT_TERMINATED
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
