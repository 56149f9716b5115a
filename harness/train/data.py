"""Training data: read local files (or hub datasets), recognise the format, validate every row
with errors that name file and line, split into train / validation / test with a seed.

Formats:
- alpaca: ``instruction``, optional ``input``, ``output`` (rendered with a prompt format);
- messages: OpenAI-style ``messages`` (system / user / assistant), rendered with the chat template;
- prompt-completion: ``prompt`` and ``completion`` strings (or chat lists);
- preference (DPO): ``prompt`` (or ``instruction`` [+ ``input``]), ``chosen``, ``rejected``.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.tasks import read_rows

SFT_FORMATS = ("alpaca", "messages", "prompt-completion")


def read_training_rows(ref: str) -> tuple[list[dict[str, Any]], str]:
    """Rows of a local file or ``hf:org/name[:split]`` (online only); returns (rows, where)."""
    if ref.startswith("hf:"):
        name, _, split = ref[3:].partition(":")
        try:
            from datasets import load_dataset

            ds = load_dataset(name, split=split or "train")
        except Exception as err:  # noqa: BLE001
            raise HarnessError(f"cannot load hub dataset '{name}' ({type(err).__name__})",
                               fix="Go online, or download it and pass a local .jsonl/.json/.parquet/.csv.") from None
        return [dict(r) for r in ds], ref
    path = Path(ref).expanduser()
    return read_rows(path), str(path)


def detect_format(rows: list[dict[str, Any]], where: str, kind: str = "sft") -> str:
    keys = set(rows[0])
    if kind == "dpo":
        return "preference"
    if "messages" in keys:
        return "messages"
    if "prompt" in keys and "completion" in keys:
        return "prompt-completion"
    if "instruction" in keys:
        return "alpaca"
    raise HarnessError(f"{where}:1: cannot tell the data format from fields {sorted(keys)}",
                       fix="Use Alpaca (instruction/input/output), chat 'messages', or 'prompt'/'completion' rows.")


def _need(row: dict, field: str, where: str, i: int, types=(str,)) -> Any:
    if field not in row or row[field] is None:
        raise HarnessError(f"{where}:{i}: missing field '{field}'", fix="Every row needs it.")
    value = row[field]
    if not isinstance(value, types):
        raise HarnessError(f"{where}:{i}: field '{field}' must be {' or '.join(t.__name__ for t in types)}, "
                           f"got {type(value).__name__}")
    if isinstance(value, (str, list)) and not value:
        raise HarnessError(f"{where}:{i}: field '{field}' is empty")
    return value


def _check_messages(msgs: list, where: str, i: int) -> None:
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or "content" not in m:
            raise HarnessError(f"{where}:{i}: each message needs 'role' (system/user/assistant) and 'content'")
    if msgs[-1]["role"] != "assistant":
        raise HarnessError(f"{where}:{i}: the last message must be the assistant's answer (the training target)")


def validate_rows(rows: list[dict[str, Any]], fmt: str, where: str) -> None:
    for i, row in enumerate(rows, 1):
        if fmt == "alpaca":
            _need(row, "instruction", where, i)
            _need(row, "output", where, i, (str, dict, list, int, float, bool))
            if row.get("input") is not None and not isinstance(row["input"], str):
                raise HarnessError(f"{where}:{i}: field 'input' must be a string")
        elif fmt == "messages":
            _check_messages(_need(row, "messages", where, i, (list,)), where, i)
        elif fmt == "prompt-completion":
            _need(row, "prompt", where, i, (str, list))
            _need(row, "completion", where, i, (str, list))
        elif fmt == "preference":
            if "prompt" not in row and "instruction" not in row:
                raise HarnessError(f"{where}:{i}: missing field 'prompt'", fix="Preference rows need prompt, chosen, rejected.")
            for f in ("chosen", "rejected"):
                _need(row, f, where, i, (str, list))
        else:  # pragma: no cover - guarded by callers
            raise HarnessError(f"unknown data format {fmt!r}")


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def to_sft_examples(rows: list[dict[str, Any]], fmt: str, prompt_format) -> list[dict[str, Any]]:
    """Rows -> trl prompt/completion examples (strings, or chat lists for 'messages')."""
    out = []
    for row in rows:
        if fmt == "alpaca":
            from harness.models.prompts import render_training

            # the prompt is exactly what evaluation sends; the completion ends on the format's
            # end-of-turn marker (trl appends the tokenizer's eos when that differs)
            prompt, completion = render_training(row["instruction"], row.get("input") or "",
                                                 _as_text(row["output"]), prompt_format, row.get("system"))
            out.append({"prompt": prompt, "completion": completion.rstrip(" \n")})
        elif fmt == "messages":
            msgs = row["messages"]
            out.append({"prompt": msgs[:-1], "completion": [msgs[-1]]})
        else:
            out.append({"prompt": row["prompt"], "completion": row["completion"]})
    return out


def to_preference_examples(rows: list[dict[str, Any]], prompt_format) -> list[dict[str, Any]]:
    """Preference rows -> trl DPO examples; plain prompts are rendered with the prompt format."""
    out = []
    for row in rows:
        prompt = row.get("prompt")
        if prompt is None:
            prompt = row["instruction"] + ("\n\n" + row["input"] if row.get("input") else "")
        if isinstance(prompt, str) and prompt_format is not None:
            prompt = prompt_format.render(prompt, "")
        out.append({"prompt": prompt, "chosen": row["chosen"], "rejected": row["rejected"]})
    return out


def parse_split(text: str) -> tuple[float, float, float]:
    """'85/5/10' -> (0.85, 0.05, 0.10)."""
    try:
        parts = [float(p) for p in text.split("/")]
    except ValueError:
        parts = []
    if len(parts) != 3 or any(p < 0 for p in parts) or sum(parts) <= 0 or parts[0] == 0:
        raise HarnessError(f"--split {text!r}: expected three numbers train/val/test such as 85/5/10")
    total = sum(parts)
    return tuple(p / total for p in parts)  # type: ignore[return-value]


def split_rows(rows: list[dict[str, Any]], ratios: tuple[float, float, float], seed: int) -> dict[str, list]:
    """Seeded shuffle, then train / val / test by the ratios (val/test get >= 1 row when asked for)."""
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    n = len(rows)
    n_val = max(1, round(n * ratios[1])) if ratios[1] > 0 else 0
    n_test = max(1, round(n * ratios[2])) if ratios[2] > 0 else 0
    if n - n_val - n_test < 1:
        raise HarnessError(f"only {n} rows: too few to split into train/val/test", fix="Add data or use --split 100/0/0.")
    val, test, train = idx[:n_val], idx[n_val:n_val + n_test], idx[n_val + n_test:]
    return {"train": [rows[i] for i in train], "val": [rows[i] for i in val], "test": [rows[i] for i in test]}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
