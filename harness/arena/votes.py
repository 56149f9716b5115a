"""Arena votes: one JSON object per line in ``<run>/arena/votes.jsonl``, appended atomically.

A vote is written as ONE ``os.write`` of the whole line (JSON + newline) on a file opened with
``O_APPEND``, then ``fsync``'d: after the call returns the vote is on disk, so a restarted server
loses nothing, and a crash can at worst leave the last line torn (no newline at its end).

Torn or unreadable lines are **skipped with a warning** naming ``file:line`` (``VoteLog.skipped``;
the report lists them): one interrupted write must not make every other vote unreadable. Before
appending after a torn tail, a newline is written first so the new vote starts on its own line.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CHOICES = ("left", "right", "tie", "both_bad")
_FIELDS = ("voter", "time", "task", "item", "left", "right", "choice")
_APPEND_LOCK = threading.Lock()  # the tail check and the write of one vote happen together


@dataclass(frozen=True)
class Vote:
    """One human judgement: ``left`` and ``right`` are the models in the order the voter saw them."""

    voter: str
    time: str  # ISO 8601, UTC
    task: str
    item: str  # the sample id within the task
    left: str
    right: str
    choice: str  # one of CHOICES

    def winner(self) -> str | None:
        """The preferred model, ``"tie"``, or None for "both bad" (no preference between the two)."""
        return {"left": self.left, "right": self.right, "tie": "tie"}.get(self.choice)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VoteLog:
    """The readable votes of a votes file and one message per line that was skipped."""

    votes: list[Vote] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def make_vote(*, voter: str, task: str, item: str, left: str, right: str, choice: str,
              time: str | None = None) -> Vote:
    """A checked Vote (ValueError for a choice outside CHOICES or the same model on both sides)."""
    problem = _problem({"voter": voter, "time": time or now_iso(), "task": task, "item": item, "left": left,
                        "right": right, "choice": choice})
    if problem:
        raise ValueError(problem)
    return Vote(voter=voter, time=time or now_iso(), task=task, item=item, left=left, right=right, choice=choice)


def append_vote(path: str | os.PathLike, vote: Vote) -> None:
    """Append ``vote`` as one line and fsync it (parents created; the folder is fsync'd on creation)."""
    target = Path(path)
    created = not target.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(vote.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")
    with _APPEND_LOCK:
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if _ends_torn(fd):
                line = b"\n" + line
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"{target}: only {written} of {len(line)} bytes of a vote were written (disk full?)")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(target.parent)


def read_votes(path: str | os.PathLike) -> VoteLog:
    """Every readable vote in ``path`` (an empty log when the file does not exist)."""
    target = Path(path)
    log = VoteLog()
    if not target.is_file():
        return log
    data = target.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file ends with a newline: the last line is complete
        torn = None
    else:
        torn = len(lines)  # no newline at the end: the last write may have been cut short
    for i, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{target}:{i}"
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            why = ("torn last line (no newline: a write was interrupted)" if i == torn
                   else f"not a JSON vote ({type(err).__name__}: {err})")
            log.skipped.append(f"{where}: {why}; skipped")
            continue
        problem = _problem(row) if isinstance(row, dict) else "not a JSON object"
        if problem:
            log.skipped.append(f"{where}: {problem}; skipped")
            continue
        log.votes.append(Vote(**{k: row[k] for k in _FIELDS}))
    return log


def _problem(row: dict[str, Any]) -> str | None:
    """What is wrong with a stored vote, or None."""
    for k in _FIELDS:
        if not isinstance(row.get(k), str) or (k != "voter" and not row[k]):
            return f"field {k!r} is missing or not text"
    if row["choice"] not in CHOICES:
        return f"choice {row['choice']!r} is not one of {', '.join(CHOICES)}"
    if row["left"] == row["right"]:
        return f"the same model {row['left']!r} on both sides"
    return None


def _ends_torn(fd: int) -> bool:
    """True when the open file is not empty and does not end with a newline."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
