"""Which trackers a run logs to: ``--log mlflow``, ``--log mlflow:URI``, ``--log wandb`` (repeatable or
a comma list), checked before anything runs (a missing package is a one-line error, exit 2)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass

from harness.errors import HarnessError

KINDS = ("mlflow", "wandb")
DEFAULT_PROJECT = "harness"


@dataclass(frozen=True)
class Target:
    """One tracker: ``kind`` (mlflow | wandb) and, for MLflow, the tracking URI (None: the
    MLFLOW_TRACKING_URI variable, else ./mlruns)."""

    kind: str
    uri: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.uri}" if self.uri else self.kind


def parse_targets(values: Iterable[str] | str | None, where: str = "--log") -> list[Target]:
    """``["mlflow", "wandb,mlflow:./store"]`` -> Targets, each once; "none" and blanks are skipped."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[Target] = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part or part.lower() == "none":
                continue
            kind, _, uri = part.partition(":")
            kind = kind.strip().lower()
            if kind not in KINDS:
                raise HarnessError(f"{where} {part!r}: not a tracker harness logs to", where=where,
                                   fix="Use mlflow, mlflow:URI (a folder or tracking server) or wandb.")
            if kind == "wandb" and uri:
                raise HarnessError(f"{where} {part!r}: wandb takes no address", where=where,
                                   fix="Use --log wandb; set WANDB_MODE / WANDB_DIR / WANDB_PROJECT to steer it.")
            target = Target(kind, uri.strip() or None)
            if target not in out:
                out.append(target)
    return out


def check_targets(targets: Iterable[Target]) -> None:
    """Every tracker's package is installed (found without importing it: mlflow takes seconds)."""
    for t in targets:
        require_tracker(t.kind, "--log")


def require_tracker(kind: str, flag: str) -> None:
    """The package of tracker ``kind`` is installed (``flag``: the option that named it)."""
    if importlib.util.find_spec(kind) is None:
        raise HarnessError(f"{flag} {kind}: the {kind} package is not installed",
                           fix=f"pip install 'checkpoint-harness[tracking]' (or: pip install {kind})")
