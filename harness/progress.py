"""One progress display for a run: rich bars on a terminal, silent when quiet."""

from __future__ import annotations

from contextlib import contextmanager


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
            yield lambda done, total_=None: None
            return
        tid = self._progress.add_task(description, total=total)

        def update(done: int, total_: int | None = None) -> None:
            self._progress.update(tid, completed=done, total=total_ or total)

        try:
            yield update
        finally:
            self._progress.update(tid, completed=self._progress.tasks[tid].total)
