"""One progress display for a run, and the switch that keeps library chatter (tqdm bars,
warnings, logs) off the terminal unless --verbose.

The display has three modes (``display_mode``): ``live`` rich bars with counts, elapsed time and
time remaining, on a terminal or in Jupyter; ``plain`` lines (``[harness] generate ...: 8/16``),
written and flushed at once, at the start and end of each phase and at most every
``HARNESS_PROGRESS_INTERVAL`` seconds (12) in between as counts move (every 30 s when they do not), when the output is a file, a pipe or CI,
so a log shows the run as it happens; ``off`` with --quiet. HARNESS_PROGRESS=live|plain|off
overrides the choice."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from contextlib import contextmanager

_CHATTY_LOGGERS = ("transformers", "datasets", "accelerate", "peft", "trl", "lm_eval", "lm-eval",
                   "huggingface_hub", "urllib3", "httpx", "filelock", "absl")


def quiet_libraries(verbose: bool = False) -> None:
    """Silence the libraries harness drives: their progress bars, warnings and info logs would
    otherwise interleave with harness's own display and push an error line off the screen.
    ``verbose`` (``--verbose``) or HARNESS_VERBOSE=1 leaves everything on; ``--verbose`` sets
    HARNESS_VERBOSE, so code that silences a library later (the lm-eval bridge) sees it too."""
    from harness.env import env_flag

    if verbose:
        os.environ["HARNESS_VERBOSE"] = "1"
    if env_flag("HARNESS_VERBOSE"):
        return
    for var, value in _QUIET_ENV:
        os.environ.setdefault(var, value)
    _ignore_warnings()
    silence_loggers()


_QUIET_ENV = (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error"), ("TQDM_DISABLE", "1"),
              ("TOKENIZERS_PARALLELISM", "false"), ("DATASETS_VERBOSITY", "error"), ("TF_CPP_MIN_LOG_LEVEL", "3"))
# (module, is on, switch off, switch on): progress bars a library already imported draws
_BAR_SWITCHES = (("transformers.utils.logging", "is_progress_bar_enabled", "disable_progress_bar",
                  "enable_progress_bar"),
                 ("datasets", "is_progress_bar_enabled", "disable_progress_bar", "enable_progress_bar"))


def _ignore_warnings() -> None:
    for category in (FutureWarning, DeprecationWarning, UserWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category)


@contextmanager
def libraries_quiet():
    """``quiet_libraries`` for the length of one run started from Python (``harness.run()`` in a
    notebook), undone afterwards: warning filters, the progress-bar switches of libraries
    already imported, the environment variables it set (a library first imported during the run
    keeps its bars off). Nothing changes under HARNESS_VERBOSE."""
    from harness.env import env_flag

    if env_flag("HARNESS_VERBOSE"):
        yield
        return
    added = [var for var, _ in _QUIET_ENV if var not in os.environ]
    for var, value in _QUIET_ENV:
        os.environ.setdefault(var, value)
    restore = []
    for module, is_on, off, on in _BAR_SWITCHES:
        mod = sys.modules.get(module)
        try:
            if mod is not None and getattr(mod, is_on)():
                getattr(mod, off)()
                restore.append(getattr(mod, on))
        except Exception:  # noqa: BLE001 - another version without the switch: leave it
            pass
    try:
        with warnings.catch_warnings():
            _ignore_warnings()
            silence_loggers()
            yield
    finally:
        for switch_on in restore:
            switch_on()
        for var in added:
            os.environ.pop(var, None)


def silence_loggers(prefixes: tuple[str, ...] = _CHATTY_LOGGERS) -> None:
    """ERROR level for the loggers of these libraries, their module loggers included (lm-eval
    sets levels on its own children, so the parent alone is not enough); unless HARNESS_VERBOSE."""
    from harness.env import env_flag

    if env_flag("HARNESS_VERBOSE"):
        return
    for name in [*logging.root.manager.loggerDict, *prefixes]:
        if name.startswith(prefixes):
            logging.getLogger(name).setLevel(logging.ERROR)


MODES = ("live", "plain", "off")
HEARTBEAT = 2.5  # plain mode: a line after this many intervals without one, even when nothing moved
PREFIX = "[harness]"


def display_mode(stream=None) -> str:
    """``live`` on a terminal (not CI, not TERM=dumb) or in Jupyter, else ``plain``;
    HARNESS_PROGRESS overrides."""
    from harness.env import env_flag

    forced = os.environ.get("HARNESS_PROGRESS", "").strip().lower()
    if forced in MODES:
        return forced
    stream = stream if stream is not None else sys.stdout
    if _in_jupyter():
        return "live"
    if env_flag("CI", "GITHUB_ACTIONS") or os.environ.get("TERM") == "dumb":
        return "plain"
    return "live" if _isatty(stream) and _isatty(sys.stderr) else "plain"


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except Exception:  # noqa: BLE001 - any IPython oddity: not a notebook
        return False
    return ip is not None and (type(ip).__name__ == "ZMQInteractiveShell" or "google.colab" in type(ip).__module__)


def _plain_text(msg: str) -> str:
    """``msg`` without rich markup (``[bold]x[/]`` -> ``x``)."""
    from rich.markup import MarkupError
    from rich.text import Text

    try:
        return Text.from_markup(msg).plain
    except MarkupError:
        return msg


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 100 else f"{int(s) // 60} min {int(s) % 60:02d} s"


class Progress:
    """The run's one progress display: ``bar(description, total)`` for each phase, ``log(msg)``
    for a line between them. ``quiet`` turns it off; ``mode`` (default ``display_mode()``)
    chooses rich bars or plain lines; ``stream`` is where they go (stdout);
    ``interval`` the least seconds between two plain progress lines of one phase (and, times
    ``HEARTBEAT``, the longest it stays silent: a line even when its count has not moved)."""

    def __init__(self, quiet: bool = False, *, mode: str | None = None, stream=None, interval: float | None = None):
        self.mode = "off" if quiet else (mode or display_mode(stream))
        if self.mode not in MODES:
            raise ValueError(f"progress mode {self.mode!r}: one of {', '.join(MODES)}")
        self.quiet = self.mode == "off"
        self.stream = stream
        if interval is None:
            try:
                interval = float(os.environ.get("HARNESS_PROGRESS_INTERVAL", "12"))
            except ValueError:
                interval = 12.0
        self.interval = interval
        self._progress = None
        self._lock = threading.Lock()  # (judge requests report from several threads)
        self._open: list[_Phase] = []  # plain mode: the phases running now
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self):
        if self.mode == "plain" and self.interval > 0:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._heartbeat, name="harness-progress", daemon=True)
            self._ticker.start()
        if self.mode == "live":
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            extra = {}
            if self.stream is not None:
                from rich.console import Console

                extra["console"] = Console(file=self.stream)
            self._progress = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                          TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                          transient=False, **extra)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join(timeout=5)
            self._ticker = None
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    # ------------------------------------------------------------------ plain lines
    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        with self._lock:
            try:
                stream.write(f"{PREFIX} {text}\n")
                stream.flush()  # a log file shows it now, not when the run ends
            except (OSError, ValueError):
                pass

    def log(self, msg: str) -> None:
        if self._progress is not None:
            self._progress.console.print(msg)
        elif self.mode == "plain":
            self._write(_plain_text(msg))

    # ------------------------------------------------------------------ phases
    @contextmanager
    def bar(self, description: str, total: int | None):
        """A phase: yields ``update(done, total=None, description=None)``; ``total`` may be None
        until known (a benchmark learns it when lm-eval hands over its requests)."""
        if self._progress is not None:
            with self._live_bar(description, total) as update:
                yield update
        elif self.mode == "plain":
            with self._plain_bar(description, total) as update:
                yield update
        else:
            yield lambda done, total_=None, description=None: None

    @contextmanager
    def _live_bar(self, description: str, total: int | None):
        tid = self._progress.add_task(description, total=total)

        def update(done: int, total_: int | None = None, description: str | None = None) -> None:
            extra = {"description": description} if description else {}
            self._progress.update(tid, completed=done, total=total_ or self._progress.tasks[tid].total, **extra)

        try:
            yield update
        finally:
            t = self._progress.tasks[tid]
            if t.total is None:
                self._progress.update(tid, total=max(1, int(t.completed)))
            self._progress.update(tid, completed=self._progress.tasks[tid].total)

    @contextmanager
    def _plain_bar(self, description: str, total: int | None):
        now = time.monotonic()
        state = _Phase(description, total, now)
        self._write(f"{description}: {state.counts()}")
        self._open.append(state)

        def update(done: int, total_: int | None = None, description: str | None = None) -> None:
            state.done = done
            if total_:
                state.total = total_
            if description:
                state.desc = description
            finished = state.total is not None and state.done >= state.total  # (the end line says it)
            if not finished and time.monotonic() - state.last >= self.interval and state.counts() != state.printed:
                self._tick(state)

        ok = False
        try:
            yield update
            ok = True
        finally:
            self._open.remove(state)
            if ok and state.total is not None:
                state.done = state.total
            elapsed = _seconds(time.monotonic() - state.t0)
            self._write(f"{state.desc}: {state.counts()} ({elapsed}{'' if ok else ', stopped'})")

    def _tick(self, state: _Phase) -> None:
        """A progress line: counts, time so far and, from the rate so far, time left."""
        now = time.monotonic()
        state.last, state.printed = now, state.counts()
        elapsed = now - state.t0
        left = ""
        if state.total and 0 < state.done < state.total:
            left = f", ~{_seconds(elapsed / state.done * (state.total - state.done))} left"
        self._write(f"{state.desc}: {state.counts()} ({_seconds(elapsed)}{left})")

    def _heartbeat(self) -> None:
        """Plain mode, on a thread: a line for each open phase that printed nothing for
        ``HEARTBEAT`` x ``interval`` seconds (30 s: one slow batch), so a log shows the run is alive."""
        quiet_for = HEARTBEAT * self.interval
        while not self._stop.wait(max(0.2, quiet_for / 4)):
            for state in list(self._open):
                if time.monotonic() - state.last >= quiet_for:
                    self._tick(state)


class _Phase:
    """One open phase of the plain display."""

    def __init__(self, desc: str, total: int | None, t0: float):
        self.desc, self.total, self.done = desc, total, 0
        self.t0 = self.last = t0
        self.printed: str | None = None

    def counts(self) -> str:
        if self.total is None:
            return "starting" if not self.done else f"{self.done}/?"
        return f"{self.done}/{self.total}"
