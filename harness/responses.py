"""Answers made elsewhere (a ``responses:`` model): read the file, match it to a task's items.

The file is read and matched while planning, so a broken line, a missing field or a missing
answer fails before a run directory exists. Answers that are not text (a JSON object a
notebook saved as an object, a number, a boolean) are stored as JSON text, never as Python's
``str()`` (which would turn ``{"a": true}`` into ``{'a': True}`` and score invalid JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records import Sample


def answer_text(value: Any) -> str:
    """The text of one answer: strings as they are, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def looks_like_python_literal(text: str) -> bool:
    """True for an answer that strict JSON parsing rejects but the lenient reading accepts (a
    Python dict/list literal such as ``{'a': True}``, the way a notebook prints a dict): exactly
    the answers ``valid_json`` scores 0 and ``json_lenient`` scores 1."""
    from harness.metrics.structured import extract_json, read_lenient_json

    return extract_json(text) is None and read_lenient_json(text) is not None


def match_responses(path: Path, field: str, model: str, task, items: list[Sample]) -> list[Sample]:
    """The task's items with ``model``'s answers from ``path``, matched by instruction + input."""
    from harness.tasks import read_rows_located

    f = task.fields
    by_key: dict[tuple[str, str], dict] = {}
    for where, row in read_rows_located(path):
        if field not in row:
            have = ", ".join(sorted(map(str, row))[:8])
            raise HarnessError(f"{where}: missing field '{field}' (the row has: {have})",
                               fix=f"Set models.{model}.field to the field that holds the answer.")
        key = (str(row.get(f.instruction, "")), str(row.get(f.input, "") or "") if f.input else "")
        by_key[key] = row
    out = []
    for s in items:
        row = by_key.get((s.instruction, s.input))
        if row is None:
            raise HarnessError(f"{path}: no answer for task {task.name} item {s.id} ({s.instruction[:40]!r}); "
                               f"the file has {len(by_key)} answers for the task's {len(items)} items",
                               fix="The responses file must contain every instruction of the task.")
        value = row[field]
        meta = {**s.meta, "source": "responses"}
        if value is not None and not isinstance(value, str):
            meta["answer_type"] = type(value).__name__
        out.append(Sample(**{**s.to_dict(), "model": model, "response": answer_text(value), "prompt": "",
                             "meta": meta}))
    return out
