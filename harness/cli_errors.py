"""The one error handler every ``harness`` command goes through (``user_errors``) and the small
helpers the command modules share."""

from __future__ import annotations

import functools
from pathlib import Path

import typer


def _fail(msg: str, code: int) -> None:
    from rich.console import Console
    from rich.markup import escape

    # escaped: a message quoting "[...]" (a flag's syntax, a list) must not be read as markup
    Console(stderr=True).print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(fn):
    """The one error handler every command goes through: a HarnessError or a known library error
    is one line on stderr with the fix (exit 2); a failed gate exits 1; anything unexpected is one
    line plus the path of the full traceback (exit 3). Library chatter is silenced first (unless
    --verbose), so nothing lands on stderr in front of that line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import click

        from harness.errors import GateFailed, as_user_error
        from harness.progress import quiet_libraries

        quiet_libraries(bool(kwargs.get("verbose")))
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except GateFailed as err:
            _fail(str(err) or "a gate failed", 1)
        except KeyboardInterrupt:
            _fail("interrupted: finished units are saved; continue with `harness run --resume RUN_DIR`", 130)
        except Exception as err:  # noqa: BLE001 - the last line of defence: never a raw traceback
            known = as_user_error(err)
            if known is not None:
                _fail(str(known), 2)
            kept = getattr(err, "run_dir", None)
            resume = f"; finished units are kept: `harness run --resume {kept}`" if kept else ""
            _fail(f"unexpected {type(err).__name__}: {_one_line(err)} (full traceback: {_save_traceback(err)}; "
                  f"please report it){resume}", 3)

    return wrapper


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def _save_traceback(err: BaseException) -> str:
    import os
    import tempfile
    import traceback
    from datetime import datetime

    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    from harness.env import cache_root

    root = cache_root() / "logs"
    try:
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"crash-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.txt"
        path.write_text(text, encoding="utf-8")
    except OSError:
        fd, name = tempfile.mkstemp(prefix="harness-crash-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        path = Path(name)
    return str(path)


def split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]
