"""The run directory: layout, atomic writes, and the read API used by report / gate / compare.

``RunDir`` is the only code that knows where things live in a run directory; the stages write
through it and report, gate, compare and baseline read through it.

Every write goes to a temporary file in the same folder and is moved into place with
``os.replace``, so a crash never leaves a half-written file behind (resume relies on it).
Reading never imports model code: a run directory is plain JSON / JSONL (and the YAML config).

Layout (see docs/ARCHITECTURE.md)::

    run.json  config.yaml  scores.json  units/<key>.json
    samples/<model>/<task>.jsonl
    benchmarks/<model>/<bench>.jsonl  benchmarks/<model>/<bench>.summary.json
    judge/<judge>/<model>/<task>.jsonl          (pairwise: judge/<judge>/<a>_vs_<b>/<task>.jsonl)
    arena/votes.jsonl                           (human votes, appended by `harness arena`)
    cache/served/                               (answers of served models, so a resumed unit does not re-ask)
    shards/<unit key>/<size>-<index>.jsonl      (finished shards of an unfinished unit; gone once it is done)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from harness import io
from harness.env import peak_rss_mib
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
        self.shards_reused = 0   # shards of unfinished units found written (a resumed run keeps them)
        self.shards_computed = 0  # shards written by this process

    def __repr__(self) -> str:
        from harness.notebook import run_repr

        return run_repr(str(self.path), self._scores_or_none()[0])

    def _repr_html_(self) -> str:
        """Jupyter: the headline scores with their 95% intervals."""
        from harness.notebook import run_html

        return run_html(str(self.path), *self._scores_or_none())

    def _scores_or_none(self) -> tuple[dict[str, Any] | None, str | None]:
        try:
            return self.scores(), None
        except HarnessError as err:
            return None, str(err)

    def to_pandas(self):
        """Every score in long form, one row per model x group x metric: a pandas DataFrame with
        columns model, group, metric, value, lo, hi (the 95% interval), n, missing, kind,
        higher_is_better."""
        from harness.notebook import scores_frame

        return scores_frame(self.scores())

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

    def arena_votes_path(self) -> Path:
        """The human votes of `harness arena` (one JSON line each; harness.arena.votes reads and appends)."""
        return self.file(Path("arena") / "votes.jsonl")

    def served_cache_path(self) -> Path:
        """Answers of served models (openai / ollama backends), kept per run."""
        return self.file(Path("cache") / "served")

    # ------------------------------------------------------------------ atomic writes
    def write_text(self, rel: str | os.PathLike, text: str) -> Path:
        return io.write_text(self.file(rel), text)

    def write_json(self, rel: str | os.PathLike, obj: Any) -> Path:
        return io.write_json(self.file(rel), obj)

    def write_jsonl(self, rel: str | os.PathLike, rows: Iterable[Any]) -> Path:
        return io.write_jsonl(self.file(rel), rows)

    def write_samples(self, model: str, task: str, samples: Iterable[Sample]) -> Path:
        return io.write_jsonl(self.samples_path(model, task), samples)

    def write_benchmark(self, model: str, bench: str, records: Iterable[Any], summary: Any) -> None:
        """A benchmark's per-question records and its summary (the lm-eval result without them)."""
        path = self.benchmark_path(model, bench)
        io.write_jsonl(path, records)
        io.write_json(path.with_name(f"{bench}.summary.json"), summary)

    def write_verdicts(self, judge: str, model: str, task: str, verdicts: Iterable[Verdict]) -> Path:
        """One judge's verdicts on one model's (pairwise: ``<a>_vs_<b>``) answers to one task."""
        return io.write_jsonl(self.verdicts_path(judge, model, task), verdicts)

    # ------------------------------------------------------------------ reads
    def read_json(self, rel: str | os.PathLike) -> Any:
        return io.read_json(self.file(rel), what="run file", fix=_DAMAGED)

    def read_jsonl(self, rel: str | os.PathLike) -> list[dict[str, Any]]:
        return io.read_jsonl(self.file(rel), what="run file", fix=_DAMAGED)

    def exists(self, rel: str | os.PathLike) -> bool:
        return self.file(rel).exists()

    def run_info(self) -> dict[str, Any]:
        """run.json as a mapping; {} when the run has none (yet)."""
        info = self.read_json("run.json") if self.exists("run.json") else {}
        return info if isinstance(info, dict) else {}

    def config(self) -> dict[str, Any]:
        """The config snapshot (config.yaml) as a mapping; {} when the run has none."""
        if not self.exists("config.yaml"):
            return {}
        data = io.read_yaml(self.file("config.yaml"), what="run config")
        return data if isinstance(data, dict) else {}

    def scores(self) -> dict[str, Any]:
        """scores.json, checked against the contract's top-level shape (a ``groups`` mapping, schema 1)."""
        if not self.path.is_dir():
            raise HarnessError(f"run directory not found: {self.path}",
                               fix="Pass the folder under reports/ of a finished run.")
        if not self.exists("scores.json"):
            raise _unfinished(self.path)
        data = self.read_json("scores.json")
        where = self.path / "scores.json"
        if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
            raise HarnessError(f"{where}: not a harness scores file (no 'groups' object)")
        if data.get("schema", 1) != 1:
            raise HarnessError(f"{where}: schema {data.get('schema')!r} is not supported (expected 1)",
                               fix="Re-score the run with this version of harness.")
        return data

    def has_samples(self, model: str, task: str) -> bool:
        return self.samples_path(model, task).is_file()

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
        """The per-question records of one benchmark for one model."""
        return self.read_jsonl(self.benchmark_path(model, bench).relative_to(self.path))

    def benchmark_summary(self, model: str, bench: str) -> Any:
        """benchmarks/<model>/<bench>.summary.json (the lm-eval result without its records)."""
        rel = self.benchmark_path(model, bench).relative_to(self.path)
        return self.read_json(rel.with_name(f"{rel.stem}.summary.json"))

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

    # ------------------------------------------------------------------ per-sample values
    def per_sample(self, group: str, model: str, metric: str) -> dict[str, float]:
        """The per-sample values behind ``model.group.metric`` of scores.json (see
        ``per_sample_metrics``); {} when the run keeps none for it."""
        return self.per_sample_metrics(group, model).get(metric, {})

    def per_sample_metrics(self, group: str, model: str) -> dict[str, dict[str, float]]:
        """``{metric: {key: value}}``: the per-sample values behind each ``model.group.<metric>`` of
        scores.json (metrics the group does not score for ``model`` are left out).

        Keys are the ones baselines store: ``<task>/<sample id>`` for a task group (the pooled
        ``all`` group takes every task group of scores.json, in its order) and for the pointwise
        ``judge`` group (whose metrics are judge names); the question id for a benchmark group.
        Values keep the file order. Groups without per-sample files (``judge-pairwise``, unknown
        kinds) give {}; missing values (None, NaN, text) are left out.
        """
        groups = self.scores()["groups"]
        body = groups.get(group)
        entry = (body.get("models") or {}).get(model) if isinstance(body, dict) else None
        if not isinstance(entry, dict) or not entry:
            return {}
        kind = body.get("kind")
        if kind == "task":
            tasks = [group] if group != "all" else [
                g for g, b in groups.items() if isinstance(b, dict) and b.get("kind") == "task" and g != "all"]
            values = self._task_values(model, tasks)
        elif kind == "benchmark":
            values = self._benchmark_values(model, group)
        elif kind == "judge" and group == "judge":
            values = self._judge_values(model)
        else:
            return {}
        return {metric: values[metric] for metric in entry if values.get(metric)}

    def _task_values(self, model: str, tasks: list[str]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for task in tasks:
            rel = self.samples_path(model, task).relative_to(self.path)
            if not self.exists(rel):
                continue
            for row in self.read_jsonl(rel):
                metrics = row.get("metrics")
                key = f"{row.get('task', task)}/{row.get('id')}"
                for metric, v in (metrics.items() if isinstance(metrics, dict) else ()):
                    if (x := _number(v)) is not None:
                        out.setdefault(metric, {})[key] = x
        return out

    def _benchmark_values(self, model: str, bench: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        if not self.exists(self.benchmark_path(model, bench).relative_to(self.path)):
            return out
        for i, row in enumerate(self.benchmark_records(model, bench)):
            key = str(row.get("id", row.get("doc_id", i)))
            nested = row.get("metrics") if isinstance(row.get("metrics"), dict) else {}
            for metric in [*row, *(k for k in nested if k not in row)]:
                x = _number(row.get(metric))
                if x is None:
                    x = _number(nested.get(metric))
                if x is not None:
                    out.setdefault(metric, {})[key] = x
        return out

    def _judge_values(self, model: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        files = sorted((judge, path) for judge, who, _, path in self.verdict_files() if who == model)
        for judge, path in files:
            for row in self.read_jsonl(path.relative_to(self.path)):
                if (x := _number(row.get("score"))) is not None:
                    out.setdefault(judge, {})[f"{row.get('task', path.stem)}/{row.get('id')}"] = x
        return out

    # ------------------------------------------------------------------ resume markers
    def _unit_rel(self, key: str) -> Path:
        return Path("units") / f"{_check_name(key, 'unit key')}.json"

    def unit_done(self, key: str) -> bool:
        done = self.file(self._unit_rel(key)).is_file()
        self.units_reused += done
        return done

    def mark_unit_done(self, key: str, info: dict[str, Any] | None = None) -> Path:
        """Unit ``key`` is finished. Its marker also records the process's peak memory so far
        (``peak_rss_mib``, a high-water mark: the unit where it jumps is the one that raised it)."""
        self.units_computed += 1
        return self.write_json(self._unit_rel(key), {"key": key, **(info or {}), "peak_rss_mib": peak_rss_mib()})

    # ------------------------------------------------------------------ shards of a unit
    def _shard_rel(self, key: str, size: int, index: int) -> Path:
        return Path("shards") / _check_name(key, "unit key") / f"{int(size)}-{int(index)}.jsonl"

    def has_shard(self, key: str, size: int, index: int) -> bool:
        """Shard ``index`` (of ``size`` items) of the unfinished unit ``key`` is written."""
        done = self.file(self._shard_rel(key, size, index)).is_file()
        self.shards_reused += done
        return done

    def write_shard(self, key: str, size: int, index: int, rows: Iterable[Any]) -> Path:
        self.shards_computed += 1
        return self.write_jsonl(self._shard_rel(key, size, index), rows)

    def read_shard(self, key: str, size: int, index: int) -> list[dict[str, Any]]:
        return self.read_jsonl(self._shard_rel(key, size, index))

    def drop_shards(self, key: str) -> None:
        """A finished unit's shards (its samples file holds them now)."""
        import shutil

        shutil.rmtree(self.file(Path("shards") / _check_name(key, "unit key")), ignore_errors=True)
        with contextlib.suppress(OSError):  # the folder goes with the last unfinished unit
            self.file("shards").rmdir()

    def finished_units(self) -> int:
        """How many unit markers the run directory holds."""
        root = self.path / "units"
        return sum(1 for _ in root.glob("*.json")) if root.is_dir() else 0

    def finished_shards(self) -> int:
        """How many shards of unfinished units the run directory holds."""
        root = self.path / "shards"
        return sum(1 for _ in root.glob("*/*.jsonl")) if root.is_dir() else 0


def _number(v: Any) -> float | None:
    """A stored per-sample value as a float (booleans count as 0/1); None when missing."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(float(v)):
        return float(v)
    return None


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
        raise _unfinished(p)
    return RunDir(p)


def _unfinished(p: Path) -> HarnessError:
    """The error for a folder without scores.json: a run that did not finish, or no run at all."""
    if (p / "run.json").is_file():
        return HarnessError(
            f"{p} is not a finished run (run.json but no scores.json)",
            fix="rerun `harness run` with the same config to resume it",
        )
    return HarnessError(f"{p} is not a run directory (no scores.json)", fix="run `harness run` first")
