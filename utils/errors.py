"""User-facing errors: a mistake the user can fix becomes one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import sys
from typing import Callable, Sequence


class UserError(Exception):
    """An input the user can fix. The message is one line that names the fix."""


def exits_cleanly(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a CLI ``main`` so a :class:`UserError` prints ``error: ...`` and returns 2, not a traceback."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except UserError as error:
            message = " ".join(str(error).split())
            print(f"error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper
