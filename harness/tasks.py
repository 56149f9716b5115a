"""Task definitions (``tasks/*.yaml``) and their data -> ``Sample`` records.

A task file names a data file (JSON, JSONL, Parquet or CSV; ``hf:org/name[:split]`` for a hub
dataset when online), which fields hold the instruction, input and reference (Alpaca names by
default, or a ``messages`` list), the language, prompt format, generation settings and metrics.
A suite file (``suite: [task, ...]``) groups tasks. Data paths are relative to the task file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import HarnessError, did_you_mean
from harness.io import read_json, read_jsonl_located, read_text, read_yaml, yaml_key_lines
from harness.metrics.lexical import detect_lang
from harness.metrics.registry import metric_options
from harness.records import Sample

BUILTIN_TASKS = Path(__file__).resolve().parent / "demo" / "tasks"  # the demo tasks, shipped in the package
DEFAULT_METRICS = ["rouge", "bleu", "chrf", "bertscore", "exact_match", "length", "perplexity"]
PREFERENCE_METRICS = ("preference",)  # what a preference task computes (harness/metrics/preference.py)


class FieldMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instruction: str = "instruction"
    input: str | None = "input"
    reference: str = "output"
    messages: str | None = None  # a chat list: the last assistant turn is the reference
    id: str | None = None
    # preference tasks (``type: preference``): the trl/DPO field names
    prompt: str = "prompt"  # a row without it uses instruction (+ input)
    chosen: str = "chosen"
    rejected: str = "rejected"


class TaskGeneration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_new_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0)
    stop: list[str] = Field(default_factory=list)


class TaskSpec(BaseModel):
    """One task: ``generation`` (the model answers, metrics score the answer) or ``preference``
    (rows of prompt / chosen / rejected; the model's log-likelihoods of both answers are compared)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    type: Literal["generation", "preference"] = "generation"
    description: str = ""
    data: str
    split: str | None = None
    filter: dict[str, Any] = Field(default_factory=dict)
    fields: FieldMap = Field(default_factory=FieldMap)
    language: Literal["ko", "en", "auto"] = "auto"
    prompt_format: str | None = None
    system_prompt: str | None = None
    generation: TaskGeneration = Field(default_factory=TaskGeneration)
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    metric_options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(default=None, ge=1)
    encoding: str = "utf-8"  # of the data file (e.g. cp949 / euc-kr for files saved by older Korean tools)
    source: str = Field(default="", exclude=True)  # the YAML file it came from

    @field_validator("name")
    @classmethod
    def _file_name_safe(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v or ""):
            raise ValueError(f"task name {v!r} must be letters, digits, '.', '_' or '-' (it names files in the "
                             "run directory: no '/', spaces or '..')")
        return v

    @field_validator("prompt_format")
    @classmethod
    def _known_format(cls, v: str | None) -> str | None:
        from harness.config import check_prompt_format

        return check_prompt_format(v)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        import codecs

        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown text encoding {v!r} (use a Python codec name: utf-8, cp949, euc-kr)") from None
        return v

    @model_validator(mode="after")
    def _metrics_fit_the_type(self) -> TaskSpec:
        if self.type == "preference":
            if "metrics" not in self.model_fields_set:
                self.metrics = list(PREFERENCE_METRICS)
            other = [m for m in self.metrics if m not in PREFERENCE_METRICS]
            if other:
                raise ValueError(f"a preference task computes {', '.join(PREFERENCE_METRICS)} only, not "
                                 f"{other[0]!r} (no answer is generated)")
        elif any(m in PREFERENCE_METRICS for m in self.metrics):
            raise ValueError(f"metric {PREFERENCE_METRICS[0]!r} needs 'type: preference' (rows of prompt, "
                             "chosen, rejected)")
        return self

    @property
    def is_preference(self) -> bool:
        return self.type == "preference"

    def data_path(self) -> Path | None:
        if self.data.startswith("hf:"):
            return None
        p = Path(self.data).expanduser()
        return p if p.is_absolute() else Path(self.source).parent / p

    def content_hash(self) -> str:
        """Hash of the definition and its data: part of every work-unit key."""
        definition = self.model_dump(mode="json")
        if not self.is_preference:  # fields generation tasks ignore: keys stay what they were before
            definition.pop("type")
            for k in ("prompt", "chosen", "rejected"):
                definition["fields"].pop(k)
        h = hashlib.sha256(json.dumps(definition, sort_keys=True).encode())
        p = self.data_path()
        if p is not None and p.is_file():
            h.update(p.read_bytes())
        return h.hexdigest()[:12]


def task_search_dirs(extra: list[Path] | None = None) -> list[Path]:
    dirs = list(extra or []) + [Path.cwd() / "tasks", BUILTIN_TASKS]
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen and r.is_dir():
            seen.add(r)
            out.append(r)
    return out


def known_tasks(extra: list[Path] | None = None) -> list[str]:
    """Names of the task and suite files in the search folders (run configs, which sit in the
    same folder as their tasks, are not tasks)."""
    names = set()
    for d in task_search_dirs(extra):
        names.update(p.stem for p in d.glob("*.yaml") if not _is_run_config(p))
    return sorted(names)


def _is_run_config(path: Path) -> bool:
    if path.stem in ("harness", "config"):
        return True
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return False
    return any(line.startswith(("models:", "gates:", "judge:", "benchmarks:")) for line in head.splitlines())


def find_task_file(ref: str, extra: list[Path] | None = None) -> Path:
    p = Path(ref).expanduser()
    if p.suffix in (".yaml", ".yml"):
        for cand in [p] + [d / p for d in (extra or [])]:
            if cand.is_file():
                return cand.resolve()
        raise HarnessError(f"task file not found: {ref}", fix="Give a path to a task YAML or a name from tasks/.")
    for d in task_search_dirs(extra):
        for suffix in (".yaml", ".yml"):
            if (d / f"{ref}{suffix}").is_file():
                return d / f"{ref}{suffix}"
    known = known_tasks(extra)
    raise HarnessError(f"unknown task '{ref}'{did_you_mean(ref, known)}",
                       fix=f"Known tasks: {', '.join(known) or '(none)'}; or give a path to a task YAML.")


def load_tasks(refs: list[str], extra: list[Path] | None = None) -> list[TaskSpec]:
    """Task names or paths (suites expanded, duplicates dropped, order kept)."""
    out: dict[str, TaskSpec] = {}
    for ref in refs:
        for task in _load_ref(ref, extra, depth=0):
            out.setdefault(task.name, task)
    return list(out.values())


def _load_ref(ref: str, extra: list[Path] | None, depth: int) -> list[TaskSpec]:
    if depth > 5:
        raise HarnessError(f"suite nesting too deep at '{ref}'", fix="Check suites for a loop.")
    path = find_task_file(ref, extra)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: expected a mapping with 'name:' and 'data:' (or 'suite:')")
    if "suite" in data:
        members = data["suite"]
        if not isinstance(members, list) or not members:
            raise HarnessError(f"{path}: field 'suite' must be a non-empty list of task names or paths")
        tasks: list[TaskSpec] = []
        for m in members:
            tasks.extend(_load_ref(str(m), [path.parent] + list(extra or []), depth + 1))
        return tasks
    try:
        task = TaskSpec.model_validate({**data, "source": str(path)})
    except ValidationError as err:
        from harness.config import format_validation_error

        lines = yaml_key_lines(path.read_text(encoding="utf-8"))
        raise HarnessError(format_validation_error(err, str(path), lines, _task_schema_at),
                           fix="See tasks/README.md for the task format.") from None
    for name in task.metrics:  # the registry the generate stage scores with: unknown names and options
        metric_options(name, task.metric_options, where=str(path))
    unused = [m for m in task.metric_options if m not in task.metrics]
    if unused:  # options for a metric the task does not compute would be ignored without a word
        raise HarnessError(f"metric_options has options for {unused[0]!r}, which the task does not compute"
                           f"{did_you_mean(unused[0], task.metrics)}", where=str(path),
                           fix=f"The task's metrics are {', '.join(task.metrics)}.")
    return [task]


def _task_schema_at(loc: tuple) -> type[BaseModel] | None:
    return {(): TaskSpec, ("fields",): FieldMap, ("generation",): TaskGeneration}.get(tuple(loc))


# ---------------------------------------------------------------- data files


def read_rows(path: Path, encoding: str = "utf-8") -> list[dict[str, Any]]:
    """Rows of a JSON / JSONL / Parquet / CSV file, with clear errors naming file:line."""
    return [row for _, row in read_rows_located(path, encoding)]


def read_rows_located(path: Path, encoding: str = "utf-8") -> list[tuple[str, dict[str, Any]]]:
    """``(place, row)`` pairs: place is ``file:line`` (JSONL, CSV) or ``file row N`` (JSON, Parquet),
    so a later error about a row names the line a user opens, blank lines included."""
    if not path.is_file():
        raise HarnessError(f"data file not found: {path}", fix="Check the 'data:' path (relative to the task file).")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = [(f"{path}:{i}", row) for i, row in read_jsonl_located(path, what="data file", encoding=encoding)]
    elif suffix == ".json":
        data = read_json(path, what="data file", encoding=encoding)
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise HarnessError(f"{path}: expected a JSON list of objects")
        rows = [(f"{path} row {i}", r) for i, r in enumerate(data, 1)]
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = [(f"{path} row {i}", r) for i, r in enumerate(pq.read_table(path).to_pylist(), 1)]
    elif suffix in (".csv", ".tsv"):
        import csv
        import io as text_io

        # through read_text, so a CSV that is not valid in its encoding names the line too
        reader = csv.DictReader(text_io.StringIO(read_text(path, what="data file", encoding=encoding), newline=""),
                                delimiter="\t" if suffix == ".tsv" else ",")
        rows = [(f"{path}:{reader.line_num}", r) for r in reader]
    else:
        raise HarnessError(f"{path}: unsupported data format '{suffix}'", fix="Use .json, .jsonl, .parquet or .csv.")
    if not rows:
        raise HarnessError(f"{path}: the data file is empty", fix="Add at least one row.")
    return rows


def _hub_rows(task: TaskSpec) -> list[dict[str, Any]]:
    ref = task.data.removeprefix("hf:")
    name, _, split = ref.partition(":")
    try:
        from datasets import load_dataset

        ds = load_dataset(name, split=split or task.split or "test")
    except Exception as err:  # noqa: BLE001 - any hub failure becomes one actionable line
        raise HarnessError(f"task {task.name}: cannot load hub dataset '{name}' ({type(err).__name__})",
                           fix="Go online or download it and point 'data:' at a local file.") from None
    return [dict(r) for r in ds]


def _row_to_sample(task: TaskSpec, row: dict[str, Any], i: int, where: str) -> Sample:
    f = task.fields
    if f.messages:
        msgs = row.get(f.messages)
        if not isinstance(msgs, list) or not msgs:
            raise HarnessError(f"{where}: field '{f.messages}' must be a non-empty list of messages")
        last = msgs[-1]
        if not isinstance(last, dict) or last.get("role") != "assistant":
            raise HarnessError(f"{where}: the last message must be the assistant's reference answer")
        users = [m for m in msgs[:-1] if isinstance(m, dict) and m.get("role") == "user"]
        system = next((m.get("content", "") for m in msgs if m.get("role") == "system"), None)
        instruction, inp, reference = (users[-1]["content"] if users else ""), "", str(last.get("content", ""))
        meta = {"messages": msgs[:-1], "system": system}
    else:
        missing = [k for k in (f.instruction, f.reference) if k not in row]
        if missing:
            raise HarnessError(f"{where}: missing field '{missing[0]}' (has: {', '.join(map(str, row))})",
                               fix=f"Map your field names under 'fields:' in {task.source or 'the task file'}.")
        instruction = str(row[f.instruction])
        inp = str(row.get(f.input) or "") if f.input else ""
        ref = row[f.reference]
        reference = ref if isinstance(ref, str) else json.dumps(ref, ensure_ascii=False)
        meta = {}
    sid = str(row[f.id]) if f.id and f.id in row else f"{task.name}-{i:04d}"
    lang = task.language if task.language != "auto" else detect_lang(instruction + " " + inp + " " + reference)
    extra = {k: v for k, v in row.items() if k in ("skill", "lang", "category")}
    return Sample(id=sid, task=task.name, lang=lang, instruction=instruction, input=inp,
                  reference=reference, meta={**meta, **extra})


def _text_field(task: TaskSpec, row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if value is None or value == "":
        have = ", ".join(map(str, row))
        raise HarnessError(f"{where}: missing field '{key}' (has: {have})",
                           fix=f"Preference rows need prompt, chosen and rejected; map your field names under "
                               f"'fields:' in {task.source or 'the task file'}.")
    if not isinstance(value, str):
        raise HarnessError(f"{where}: field '{key}' must be text, got {type(value).__name__}",
                           fix="Write chosen and rejected as plain answer text (chat-message lists are not read).")
    return value


def _row_to_preference(task: TaskSpec, row: dict[str, Any], i: int, where: str) -> Sample:
    """A preference row: the prompt (``prompt``, else ``instruction`` + ``input``) as the Sample's
    instruction/input, ``chosen`` as its reference, both answers in ``meta``."""
    f = task.fields
    if f.prompt in row:
        instruction, inp = _text_field(task, row, f.prompt, where), ""
    elif f.instruction in row:
        instruction = _text_field(task, row, f.instruction, where)
        inp = str(row.get(f.input) or "") if f.input else ""
    else:
        instruction, inp = _text_field(task, row, f.prompt, where), ""  # raises: names the field
    chosen, rejected = _text_field(task, row, f.chosen, where), _text_field(task, row, f.rejected, where)
    sid = str(row[f.id]) if f.id and f.id in row else f"{task.name}-{i:04d}"
    lang = task.language if task.language != "auto" else detect_lang(f"{instruction} {inp} {chosen}")
    extra = {k: v for k, v in row.items() if k in ("skill", "lang", "category", "rejected_kind")}
    return Sample(id=sid, task=task.name, lang=lang, instruction=instruction, input=inp, reference=chosen,
                  meta={"chosen": chosen, "rejected": rejected, **extra})


def load_samples(task: TaskSpec, limit: int | None = None) -> list[Sample]:
    """The task's items as Samples (no model fields yet)."""
    path = task.data_path()
    where_file = task.data if path is None else str(path)
    rows = ([(f"{where_file} row {i + 1}", r) for i, r in enumerate(_hub_rows(task))] if path is None
            else read_rows_located(path, task.encoding))
    samples = []
    for i, (where, row) in enumerate(rows):
        if task.filter and any(row.get(k) != v for k, v in task.filter.items()):
            continue
        samples.append((_row_to_preference if task.is_preference else _row_to_sample)(task, row, i, where))
    if not samples:
        raise HarnessError(f"task {task.name}: no rows left after filter {task.filter} in {where_file}")
    n = min(x for x in (limit, task.limit) if x) if (limit or task.limit) else None
    return samples[:n] if n else samples
