"""One progress display for a run (rich bars on a terminal, silent when quiet), and the switch
that keeps library chatter (tqdm bars, warnings, logs) off the terminal unless --verbose."""

from __future__ import annotations

import logging
import os
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
    for var, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("TQDM_DISABLE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                       ("DATASETS_VERBOSITY", "error"), ("TF_CPP_MIN_LOG_LEVEL", "3")):
        os.environ.setdefault(var, value)
    for category in (FutureWarning, DeprecationWarning, UserWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category)
    silence_loggers()


def silence_loggers(prefixes: tuple[str, ...] = _CHATTY_LOGGERS) -> None:
    """ERROR level for the loggers of these libraries, their module loggers included (lm-eval
    sets levels on its own children, so the parent alone is not enough); unless HARNESS_VERBOSE."""
    from harness.env import env_flag

    if env_flag("HARNESS_VERBOSE"):
        return
    for name in [*logging.root.manager.loggerDict, *prefixes]:
        if name.startswith(prefixes):
            logging.getLogger(name).setLevel(logging.ERROR)


class Progress:
    """A thin wrapper over rich progress bars (silent when quiet)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._progress = None

    def __enter__(self):
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                          TimeElapsedColumn(), transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def log(self, msg: str) -> None:
        if self._progress is not None:
            self._progress.console.print(msg)

    @contextmanager
    def bar(self, description: str, total: int):
        if self._progress is None:
            yield lambda done, total_=None, description=None: None
            return
        tid = self._progress.add_task(description, total=total)

        def update(done: int, total_: int | None = None, description: str | None = None) -> None:
            extra = {"description": description} if description else {}
            self._progress.update(tid, completed=done, total=total_ or total, **extra)

        try:
            yield update
        finally:
            self._progress.update(tid, completed=self._progress.tasks[tid].total)
