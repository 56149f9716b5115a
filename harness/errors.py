"""User-facing errors: one line that says what was wrong, where, and what to do.

Anything a user can fix (config, data files, paths, unreachable servers) raises
``HarnessError``; the CLI prints its message without a traceback and exits with code 2.
"""

from __future__ import annotations


class HarnessError(Exception):
    """An input or environment mistake the user can act on (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        self.where = where
        self.fix = fix
        parts = [f"{where}: {message}" if where else message]
        if fix:
            parts.append(fix)
        super().__init__(" ".join(p.rstrip() for p in parts))


class GateFailed(Exception):
    """Raised by ``harness run --gate`` when a gate fails (exit code 1)."""

    exit_code = 1
