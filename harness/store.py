"""The run directory: layout, atomic writes, and the read API used by report / gate / compare.

Every write goes to a temporary file in the same folder and is moved into place with
``os.replace``, so a crash never leaves a half-written file behind (resume relies on it).
Reading never imports model code: a run directory is plain JSON / JSONL.

Layout (see docs/ARCHITECTURE.md)::

    run.json  config.yaml  scores.json  units/<key>.json
    samples/<model>/<task>.jsonl
    benchmarks/<model>/<bench>.jsonl
    judge/<judge>/<model>/<task>.jsonl
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import io
from harness.errors import HarnessError
from harness.records import Sample, Verdict

_DAMAGED = "the file is damaged: rerun `harness run`"
_NAME_OK = re.compile(r"^[A-Za-z0-9._@+=,-][A-Za-z0-9._@+=, -]*$")


def _check_name(name: str, what: str) -> str:
    """Model, task, judge and unit names become path components: keep them inside the run dir."""
    if not isinstance(name, str) or not name or name in (".", "..") or not _NAME_OK.match(name):
        raise HarnessError(
            f"{what} name {name!r} cannot be used as a file name",
            fix="use letters, digits and . _ - only",
        )
    return name


def unit_key(*parts: Any) -> str:
    """The key of a work unit: a hash of everything its result depends on (resume skips a unit
    whose key has a marker in ``units/``)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def new_run_id(config_hash: str = "", now: datetime | None = None) -> str:
    """``20261126-013000-<confighash6>`` (local time; the hash part is omitted when unknown)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    short = re.sub(r"[^0-9a-zA-Z]", "", config_hash)[:6]
    return f"{stamp}-{short}" if short else stamp


class RunDir:
    """One run directory. Paths given to the methods are relative to it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.units_reused = 0    # unit markers found (resume skips those units)
        self.units_computed = 0  # units finished by this process

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, root: str | os.PathLike, run_id: str | None = None, *, config_hash: str = "") -> RunDir:
        """Make ``root/<run_id>`` (a fresh time-stamped id when None) and return it.

        An explicit ``run_id`` that already exists is reopened (that is how resume works);
        a generated id that collides gets a ``-2``, ``-3`` ... suffix.
        """
        root = Path(root)
        if run_id is not None:
            _check_name(run_id, "run id")
            path = root / run_id
        else:
            base = new_run_id(config_hash)
            path, k = root / base, 2
            while path.exists():
                path, k = root / f"{base}-{k}", k + 1
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HarnessError(f"cannot create the run directory {path}: {e.strerror or e}") from e
        return cls(path)

    @property
    def run_id(self) -> str:
        info = self.run_info() if (self.path / "run.json").is_file() else {}
        return str(info.get("run_id") or self.path.name)

    # ------------------------------------------------------------------ paths
    def file(self, rel: str | os.PathLike) -> Path:
        """Absolute path of ``rel``; refuses paths that leave the run directory."""
        rel = Path(rel)
        if rel.is_absolute() or ".." in rel.parts:
            raise HarnessError(f"{rel} is not a path inside the run directory {self.path}")
        return self.path / rel

    def samples_path(self, model: str, task: str) -> Path:
        return self.file(Path("samples") / _check_name(model, "model") / f"{_check_name(task, 'task')}.jsonl")

    def benchmark_path(self, model: str, bench: str) -> Path:
        return self.file(Path("benchmarks") / _check_name(model, "model") / f"{_check_name(bench, 'benchmark')}.jsonl")

    def verdicts_path(self, judge: str, model: str, task: str) -> Path:
        return self.file(
            Path("judge") / _check_name(judge, "judge") / _check_name(model, "model") / f"{_check_name(task, 'task')}.jsonl"
        )

    # ------------------------------------------------------------------ atomic writes
    def write_text(self, rel: str | os.PathLike, text: str) -> Path:
        return io.write_text(self.file(rel), text)

    def write_json(self, rel: str | os.PathLike, obj: Any) -> Path:
        return io.write_json(self.file(rel), obj)

    def write_jsonl(self, rel: str | os.PathLike, rows: Iterable[Any]) -> Path:
        return io.write_jsonl(self.file(rel), rows)

    def write_samples(self, model: str, task: str, samples: Iterable[Sample]) -> Path:
        return self.write_jsonl(self.samples_path(model, task).relative_to(self.path), samples)

    # ------------------------------------------------------------------ reads
    def read_json(self, rel: str | os.PathLike) -> Any:
        return io.read_json(self.file(rel), what="run file", fix=_DAMAGED)

    def read_jsonl(self, rel: str | os.PathLike) -> list[dict[str, Any]]:
        return io.read_jsonl(self.file(rel), what="run file", fix=_DAMAGED)

    def exists(self, rel: str | os.PathLike) -> bool:
        return self.file(rel).exists()

    def run_info(self) -> dict[str, Any]:
        return self.read_json("run.json") if self.exists("run.json") else {}

    def scores(self) -> dict[str, Any]:
        if not self.exists("scores.json"):
            raise HarnessError(
                f"{self.path} is not a run directory (no scores.json)", fix="run `harness run` first"
            )
        data = self.read_json("scores.json")
        if not isinstance(data, dict) or not isinstance(data.get("groups", {}), dict):
            raise HarnessError(f"{self.path / 'scores.json'}: not a harness scores file (no 'groups' object)")
        return data

    def samples(self, model: str, task: str) -> list[Sample]:
        path = self.samples_path(model, task)
        return [Sample.from_dict(r) for r in self.read_jsonl(path.relative_to(self.path))]

    def sample_files(self) -> list[tuple[str, str, Path]]:
        """``(model, task, path)`` for every samples/<model>/<task>.jsonl, sorted."""
        root = self.path / "samples"
        if not root.is_dir():
            return []
        return sorted((p.parent.name, p.stem, p) for p in root.glob("*/*.jsonl"))

    def benchmark_files(self) -> list[tuple[str, str, Path]]:
        """``(model, bench, path)`` for every benchmarks/<model>/<bench>.jsonl, sorted."""
        root = self.path / "benchmarks"
        if not root.is_dir():
            return []
        return sorted((p.parent.name, p.stem, p) for p in root.glob("*/*.jsonl"))

    def benchmark_records(self, model: str, bench: str) -> list[dict[str, Any]]:
        return self.read_jsonl(self.benchmark_path(model, bench).relative_to(self.path))

    def verdict_files(self) -> list[tuple[str, str, str, Path]]:
        """``(judge, model, task, path)`` for every judge/<judge>/<model>/<task>.jsonl, sorted.

        Pairwise verdicts live under a model folder named ``<a>_vs_<b>``.
        """
        root = self.path / "judge"
        if not root.is_dir():
            return []
        return sorted((p.parent.parent.name, p.parent.name, p.stem, p) for p in root.glob("*/*/*.jsonl"))

    def verdicts(self, judge: str, model: str, task: str) -> list[Verdict]:
        path = self.verdicts_path(judge, model, task)
        return [Verdict.from_dict(r) for r in self.read_jsonl(path.relative_to(self.path))]

    # ------------------------------------------------------------------ resume markers
    def _unit_rel(self, key: str) -> Path:
        return Path("units") / f"{_check_name(key, 'unit key')}.json"

    def unit_done(self, key: str) -> bool:
        done = self.file(self._unit_rel(key)).is_file()
        self.units_reused += done
        return done

    def mark_unit_done(self, key: str, info: dict[str, Any] | None = None) -> Path:
        self.units_computed += 1
        return self.write_json(self._unit_rel(key), {"key": key, **(info or {})})

    def finished_units(self) -> int:
        """How many unit markers the run directory holds."""
        root = self.path / "units"
        return sum(1 for _ in root.glob("*.json")) if root.is_dir() else 0


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a finished run (a scores.json)."""
    return (Path(path) / "scores.json").is_file()


def open_run(path: str | os.PathLike) -> RunDir:
    """The run at ``path``; a HarnessError (with what to do) when it is not one."""
    p = Path(path)
    if not p.exists():
        raise HarnessError(f"{p} does not exist", fix="pass a run directory, e.g. reports/<run-id>")
    if not p.is_dir():
        raise HarnessError(f"{p} is not a run directory (a file)", fix="pass the folder, e.g. reports/<run-id>")
    if not is_run_dir(p):
        if (p / "run.json").is_file():
            raise HarnessError(
                f"{p} is not a finished run (run.json but no scores.json)",
                fix="rerun `harness run` with the same config to resume it",
            )
        raise HarnessError(f"{p} is not a run directory (no scores.json)", fix="run `harness run` first")
    return RunDir(p)
