"""The command-line error contract shared by every script.

On a user's mistake or an environment refusal, stderr is exactly one line starting ``error:`` that
names the flag or file and the fix, and the exit status says what happened:

- 2: a usage error (a flag or value that cannot work: :class:`UsageError`, argparse's errors);
- 1: anything else the user can fix (a file, a run, the environment: :class:`UserError`, every
  ``OSError`` (a symlink loop included), running out of memory, a number too large to compute
  with, an input nested too deeply);
- 130: interrupted (SIGINT, Ctrl-C); 143: terminated (SIGTERM, as schedulers send it).

A genuine bug (an exception nobody anticipated) still prints its traceback, followed by a line
asking to report it: turning bugs into one-liners would hide them.

The handlers are installed by :func:`exits_cleanly` when ``main`` starts and restored when it
returns, so calling a script's ``main`` from Python leaves the process as it was. This module
imports only the standard library: scripts import it before numpy or torch, so a Ctrl-C while
those load already ends in one line.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib.abc
import os
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator, Sequence

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
BUG_LINE = "this is a bug, not a mistake in your input: please report it with the command line and the traceback above"


OUT_OF_MEMORY = "out of memory; use smaller sizes, fewer heads or a machine with more memory"
# How libraries say the address space is exhausted (ulimit -v, a full machine) without a MemoryError:
# torch's CPU allocator (RuntimeError) and the dynamic loader mapping a library (ImportError).
MEMORY_REFUSALS = ("DefaultCPUAllocator: can't allocate memory", "failed to map segment from shared object")
# pathlib's resolve() (Python 3.11) raises RuntimeError("Symlink loop from '<path>'") where the OS says ELOOP.
SYMLINK_LOOP = "Symlink loop from"


class UserError(Exception):
    """Something the user can fix (a file, a run, the environment). The message is one line naming the fix."""

    exit_code = EXIT_ERROR


class UsageError(UserError):
    """A flag or value that cannot work, found before any work starts."""

    exit_code = EXIT_USAGE


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so that ``finally`` blocks clean up as on Ctrl-C."""


_OS_CAUSES = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device (disk full)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EEXIST: "it already exists",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EMFILE: "too many open files",
    errno.ENOTEMPTY: "the folder is not empty",
    errno.EXDEV: "it is on another file system",
    errno.EIO: "input/output error",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop)",
}
_OS_FIXES = {
    errno.EACCES: "choose a folder you can write to, or fix its permissions",
    errno.EPERM: "choose a folder you can write to, or fix its permissions",
    errno.EROFS: "choose a writable folder",
    errno.ENOSPC: "free some space or choose another disk",
    errno.EDQUOT: "free some space or choose another disk",
    errno.ENOTDIR: "remove or rename that file, or choose another path",
    errno.EISDIR: "give a file path, not a folder",
    errno.EEXIST: "remove it or choose another path",
    errno.ELOOP: "point the link at a real file or folder",
}


@contextlib.contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Give an ``OSError`` raised inside without a file name (a failed ``write``: disk full) ``path``'s name."""
    try:
        yield
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise


def describe_os_error(error: OSError, action: str = "cannot use") -> str:
    """One line for an ``OSError``: the path, the cause in words and, where there is one, the fix."""
    path = error.filename if error.filename is not None else "a file"
    cause = _OS_CAUSES.get(error.errno, error.strerror or type(error).__name__)
    name = errno.errorcode.get(error.errno or 0)
    fix = _OS_FIXES.get(error.errno)
    text = f"{action} {path}: {cause}" + (f" ({name})" if name else "")
    return text + (f"; {fix}" if fix else "")


def _one_line(message: object) -> str:
    return " ".join(str(message).split())


def _stop_once():
    """SIGINT/SIGTERM handlers that raise on the first signal and ignore the ones that follow it.

    The first stop unwinds everything (``finally`` blocks release locks and remove temporary runs);
    a second signal while that cleanup runs (a launcher stopping its workers after the terminal's
    Ctrl-C already reached them) must not cut it short and leave a lock behind.
    """
    stopping = []

    def handler(signum, frame):
        if stopping:
            return
        stopping.append(signum)
        raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()

    return handler


# A test hook: SELFDISTILL_SIGNAL_AT_IMPORT=MODULE:SIGNAL sends SIGNAL to this process when MODULE is
# first imported, so that a signal during start-up can be tested deterministically.
SIGNAL_AT_IMPORT = "SELFDISTILL_SIGNAL_AT_IMPORT"


class _SignalAtImport(importlib.abc.MetaPathFinder):
    def __init__(self, module: str, signum: int):
        self.module, self.signum, self.fired = module, signum, False

    def find_spec(self, fullname, path, target=None):
        if not self.fired and fullname == self.module:
            self.fired = True
            os.kill(os.getpid(), self.signum)
        return None


@contextlib.contextmanager
def signal_handlers() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt and SIGTERM raises :class:`Terminated` inside the block (the first of
    them; later ones are ignored while it unwinds); the previous handlers are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
    handler = _stop_once()
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    hook = None
    spec = os.environ.get(SIGNAL_AT_IMPORT)
    if spec and ":" in spec:
        module, name = spec.split(":", 1)
        hook = _SignalAtImport(module, getattr(signal, name))
        sys.meta_path.insert(0, hook)
    try:
        yield
    finally:
        if hook is not None:
            sys.meta_path.remove(hook)
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends: for a few renames that must happen together."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def exits_cleanly(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a CLI ``main`` in the error contract above; returns the exit status instead of raising."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        try:
            with signal_handlers(), _stdout_by_line():
                return main(argv)
        except UserError as error:
            print(f"error: {_one_line(error)}", file=sys.stderr)
            return error.exit_code
        except BrokenPipeError:  # stdout piped into e.g. `head`: what was saved is saved; stop quietly
            _silence_stdout()
            return EXIT_ERROR
        except OSError as error:
            print(f"error: {_one_line(describe_os_error(error))}", file=sys.stderr)
            return EXIT_ERROR
        except MemoryError:
            print(f"error: {OUT_OF_MEMORY}", file=sys.stderr)
            return EXIT_ERROR
        except OverflowError as error:
            print(
                f"error: a number is too large to compute with ({_one_line(error)}); use smaller values",
                file=sys.stderr,
            )
            return EXIT_ERROR
        except RecursionError:
            print(
                "error: an input is nested too deeply to read; flatten it (a few levels of tables or lists)",
                file=sys.stderr,
            )
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Terminated:
            print("terminated", file=sys.stderr)
            return EXIT_TERMINATED
        except Exception as error:
            if isinstance(error, (RuntimeError, ImportError)) and any(t in str(error) for t in MEMORY_REFUSALS):
                print(f"error: {OUT_OF_MEMORY} ({_one_line(str(error).split('. ')[-1])[:160]})", file=sys.stderr)
                return EXIT_ERROR
            if isinstance(error, RuntimeError) and str(error).startswith(SYMLINK_LOOP):
                path = str(error).removeprefix(SYMLINK_LOOP).strip(" '")
                loop = OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                print(f"error: {_one_line(describe_os_error(loop))}", file=sys.stderr)
                return EXIT_ERROR
            traceback.print_exc()
            print(BUG_LINE, file=sys.stderr)
            return EXIT_ERROR

    return wrapper


@contextlib.contextmanager
def _stdout_by_line() -> Iterator[None]:
    """Results reach a file or pipe as each line is printed, not in one block at exit (as on a terminal);
    the buffering is put back afterwards."""
    stream = sys.stdout
    before = getattr(stream, "line_buffering", None)
    if before is False and hasattr(stream, "reconfigure"):
        with contextlib.suppress(ValueError, OSError):
            stream.reconfigure(line_buffering=True)
    try:
        yield
    finally:
        if before is False and getattr(stream, "line_buffering", False) and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(line_buffering=False)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not complain about a closed pipe."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # AttributeError: no stdout at all
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run_script(main: Callable[[Sequence[str] | None], int]) -> None:
    """``sys.exit(main())`` for a script's ``__main__``; a closed stdout (``| head``) ends quietly."""
    code = main(None)
    try:
        if sys.stdout is not None:  # None when the script was started with stdout closed (>&-)
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        code = code or EXIT_ERROR
    raise SystemExit(code)
