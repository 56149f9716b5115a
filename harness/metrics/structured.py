"""Structured-answer metrics: exact match, containment, regex, JSON fields, lengths.

Every function returns per-sample values (0/1 for the checks) so they can be bootstrapped
and compared with McNemar's test. Text normalisation is configurable: lower-casing and
whitespace collapsing are on by default, punctuation stripping is off.
"""

from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from collections.abc import Sequence
from typing import Any

from harness.errors import HarnessError
from harness.metrics.registry import HIGHER, LOWER, NEUTRAL, Answers, metric

_WS = re.compile(r"\s+")
_PUNCT = set(string.punctuation) | {"。", "、", "「", "」", "『", "』", "…", "·", "“", "”", "‘", "’"}
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TRUE = {"true", "yes", "y", "1", "예", "네", "참"}
_FALSE = {"false", "no", "n", "0", "아니오", "아니요", "거짓"}


def normalize_text(
    text: str,
    ignore_case: bool = True,
    normalize_whitespace: bool = True,
    strip_punctuation: bool = False,
) -> str:
    """``text`` in NFKC, optionally case-folded, punctuation-stripped and with whitespace
    runs collapsed to one space (and stripped at both ends)."""
    text = unicodedata.normalize("NFKC", text or "")
    if ignore_case:
        text = text.casefold()
    if strip_punctuation:
        text = "".join(ch for ch in text if ch not in _PUNCT)
    if normalize_whitespace:
        text = _WS.sub(" ", text).strip()
    return text


def _check_lengths(predictions: Sequence, references: Sequence, what: str) -> None:
    if len(predictions) != len(references):
        raise HarnessError(
            f"{what}: {len(predictions)} predictions but {len(references)} references",
            fix="Pass one reference per prediction.",
        )


def exact_match(
    predictions: Sequence[str],
    references: Sequence[str],
    ignore_case: bool = True,
    normalize_whitespace: bool = True,
    strip_punctuation: bool = False,
) -> list[float]:
    """1.0 where the normalised prediction equals the normalised reference, else 0.0."""
    _check_lengths(predictions, references, "exact_match")
    kw = {
        "ignore_case": ignore_case,
        "normalize_whitespace": normalize_whitespace,
        "strip_punctuation": strip_punctuation,
    }
    return [
        float(normalize_text(p, **kw) == normalize_text(r, **kw)) for p, r in zip(predictions, references)
    ]


def contains(
    predictions: Sequence[str],
    references: Sequence[str],
    ignore_case: bool = True,
    normalize_whitespace: bool = True,
    strip_punctuation: bool = False,
) -> list[float]:
    """1.0 where the normalised reference occurs inside the normalised prediction, else 0.0.
    An empty reference counts as contained only in an empty prediction."""
    _check_lengths(predictions, references, "contains")
    kw = {
        "ignore_case": ignore_case,
        "normalize_whitespace": normalize_whitespace,
        "strip_punctuation": strip_punctuation,
    }
    out = []
    for p, r in zip(predictions, references):
        pn, rn = normalize_text(p, **kw), normalize_text(r, **kw)
        out.append(float(pn == "" if rn == "" else rn in pn))
    return out


def regex_match(
    predictions: Sequence[str],
    pattern: str,
    references: Sequence[str] | None = None,
    ignore_case: bool = True,
    normalize_whitespace: bool = False,
) -> list[float]:
    """1.0 where ``re.search(pattern, prediction)`` finds a match, else 0.0.

    The literal text ``{reference}`` in ``pattern`` is replaced by the sample's reference,
    regex-escaped (e.g. ``r"answer is\\s*{reference}\\b"``); other braces keep their regex
    meaning.
    """
    uses_ref = "{reference}" in pattern
    if uses_ref:
        if references is None:
            raise HarnessError(
                "regex pattern uses {reference} but no references were given",
                fix="Give the task a reference field or drop {reference} from the pattern.",
            )
        _check_lengths(predictions, references, "regex")
    flags = re.IGNORECASE if ignore_case else 0
    try:
        fixed = None if uses_ref else re.compile(pattern, flags)
    except re.error as e:
        raise HarnessError(f"invalid regex {pattern!r}: {e}", fix="Fix the pattern in the task YAML.") from e
    out = []
    for i, pred in enumerate(predictions):
        text = unicodedata.normalize("NFKC", pred or "")
        if normalize_whitespace:
            text = _WS.sub(" ", text).strip()
        rx = fixed
        if rx is None:
            ref = unicodedata.normalize("NFKC", references[i] or "").strip()
            try:
                rx = re.compile(pattern.replace("{reference}", re.escape(ref)), flags)
            except re.error as e:
                raise HarnessError(
                    f"invalid regex {pattern!r}: {e}", fix="Fix the pattern in the task YAML."
                ) from e
        out.append(float(rx.search(text) is not None))
    return out


def extract_json(text: str, *, objects_only: bool = False) -> Any | None:
    """The first JSON object in a model reply: inside a ```json fence when there is one,
    otherwise the first ``{...}`` that parses, wherever it sits in the prose. A bare JSON
    value (object or array) is accepted as is unless ``objects_only``. None when nothing parses."""
    text = text or ""
    decoder = json.JSONDecoder()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        stripped = chunk.strip()
        if stripped[:1] in ("{", "["):
            try:
                whole = json.loads(stripped)
            except json.JSONDecodeError:
                whole = None
            if whole is not None and (isinstance(whole, dict) or not objects_only):
                return whole
        for m in re.finditer(r"\{", chunk):
            try:
                obj, _ = decoder.raw_decode(chunk, m.start())
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def values_equal(pred: Any, ref: Any) -> bool:
    """Whether a predicted JSON value matches the reference value after normalisation:
    booleans also accept "true"/"yes"/"예" (etc.) strings; numbers compare with a relative
    tolerance of 1e-6 and accept numeric strings; strings compare case-folded with whitespace
    collapsed; lists element-wise in order; objects field by field (all must match)."""
    if isinstance(ref, bool):
        if isinstance(pred, bool):
            return pred == ref
        if isinstance(pred, str):
            s = normalize_text(pred)
            return (s in _TRUE and ref) or (s in _FALSE and not ref)
        if isinstance(pred, (int, float)):
            return pred in (0, 1) and bool(pred) == ref
        return False
    if isinstance(ref, (int, float)):
        if isinstance(pred, bool):
            return False
        if isinstance(pred, str):
            try:
                pred = float(pred.strip().replace(",", ""))
            except ValueError:
                return False
        if isinstance(pred, (int, float)):
            return math.isclose(float(pred), float(ref), rel_tol=1e-6, abs_tol=1e-12)
        return False
    if isinstance(ref, str):
        if isinstance(pred, bool):
            return normalize_text(ref) == ("true" if pred else "false")
        if isinstance(pred, (int, float)):
            return normalize_text(ref) == normalize_text(str(pred))
        return isinstance(pred, str) and normalize_text(pred) == normalize_text(ref)
    if ref is None:
        return pred is None
    if isinstance(ref, list):
        return (
            isinstance(pred, list)
            and len(pred) == len(ref)
            and all(values_equal(p, r) for p, r in zip(pred, ref))
        )
    if isinstance(ref, dict):
        if not isinstance(pred, dict):
            return False
        pn = {normalize_text(str(k)): v for k, v in pred.items()}
        for k, v in ref.items():
            key = normalize_text(str(k))
            if key not in pn or not values_equal(pn[key], v):
                return False
        return True
    return pred == ref


def _reference_json(ref: Any, index: int) -> Any:
    if isinstance(ref, (dict, list)):
        return ref
    try:
        return json.loads(ref)
    except (TypeError, json.JSONDecodeError) as e:
        obj = extract_json(ref if isinstance(ref, str) else "")
        if obj is None:
            raise HarnessError(
                f"reference {index} is not JSON ({e})",
                where="json metric",
                fix="Write JSON-task references as JSON objects (or JSON strings).",
            ) from e
        return obj


def read_lenient_json(text: str) -> Any | None:
    """Like ``extract_json``, but also reads what notebooks print for a dict: a Python literal
    (single quotes, ``True``/``None``), the whole reply or its first ``{...}``. None when neither."""
    obj = extract_json(text)
    if obj is not None:
        return obj
    import ast

    text = text or ""
    start, end = text.find("{"), text.rfind("}")
    for chunk in (text.strip(), text[start:end + 1] if 0 <= start < end else ""):
        if not chunk.startswith(("{", "[")):
            continue
        try:
            value = ast.literal_eval(chunk)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            continue
        if isinstance(value, (dict, list)):
            return value
    return None


def json_answer(predictions: Sequence[str], references: Sequence[Any], *, lenient: bool = False) -> dict:
    """JSON-answer scores.

    Returns ``{"valid_json": [0/1 per sample], "json_lenient": [0/1: JSON, or a Python dict/list
    literal], "field_acc": [fraction of reference fields
    answered correctly per sample], "fields": {field: [0/1 per sample, None where the
    reference lacks the field]}, "field_summary": {field: accuracy over samples having it}}``.
    The prediction's first JSON object is extracted (fences and prose allowed); an invalid
    reply gets 0 on every field; with ``lenient`` a Python-literal reply is read for the fields
    too (``valid_json`` stays strict). References may be dicts or JSON strings; a non-object
    reference (list, number...) is compared as a single field ``"$"``.
    """
    _check_lengths(predictions, references, "json")
    refs = [_reference_json(r, i) for i, r in enumerate(references)]
    field_names: list[str] = []
    for r in refs:
        for k in r if isinstance(r, dict) else ["$"]:
            if k not in field_names:
                field_names.append(k)
    valid: list[float] = []
    loose: list[float] = []
    field_acc: list[float | None] = []
    fields: dict[str, list[float | None]] = {k: [] for k in field_names}
    for pred, ref in zip(predictions, refs):
        obj = extract_json(pred)
        valid.append(float(obj is not None))
        readable = obj if obj is not None else read_lenient_json(pred)
        loose.append(float(readable is not None))
        if lenient:
            obj = readable
        ref_fields = ref if isinstance(ref, dict) else {"$": ref}
        if isinstance(ref, dict):
            pred_fields = {normalize_text(str(k)): v for k, v in obj.items()} if isinstance(obj, dict) else {}
        else:
            pred_fields = {"$": obj} if obj is not None else {}
        correct = []
        for k in field_names:
            if k not in ref_fields:
                fields[k].append(None)
                continue
            key = k if k == "$" else normalize_text(str(k))
            ok = key in pred_fields and values_equal(pred_fields[key], ref_fields[k])
            fields[k].append(float(ok))
            correct.append(float(ok))
        field_acc.append(sum(correct) / len(correct) if correct else None)
    summary = {}
    for k, vals in fields.items():
        present = [v for v in vals if v is not None]
        summary[k] = sum(present) / len(present) if present else None
    return {"valid_json": valid, "json_lenient": loose, "field_acc": field_acc, "fields": fields,
            "field_summary": summary}


def length_stats(
    predictions: Sequence[str],
    n_tokens: Sequence[int | None] | None = None,
) -> dict[str, list[float | None]]:
    """Per-sample answer lengths: ``length_chars`` (characters, surrounding whitespace
    stripped), ``length_words`` (whitespace words), ``length_tokens`` (the generated-token
    counts passed in, when given) and ``empty`` (1.0 for an empty/whitespace-only answer;
    its mean is the empty-answer rate)."""
    out: dict[str, list[float | None]] = {
        "length_chars": [float(len((p or "").strip())) for p in predictions],
        "length_words": [float(len((p or "").split())) for p in predictions],
        "empty": [float(not (p or "").strip()) for p in predictions],
    }
    if n_tokens is not None:
        _check_lengths(predictions, n_tokens, "length")
        out["length_tokens"] = [None if t is None else float(t) for t in n_tokens]
    return out


# ---------------------------------------------------------------- the registered metrics

_NORMALIZE_OPTIONS = {
    "ignore_case": "default true",
    "normalize_whitespace": "default true",
    "strip_punctuation": "default false",
}


@metric(
    "exact_match",
    description="1 when the normalised answer equals the reference",
    outputs={"exact_match": HIGHER},
    binary=("exact_match",),
    options=_NORMALIZE_OPTIONS,
)
def exact_match_metric(answers: Answers, *, ignore_case: bool = True, normalize_whitespace: bool = True,
                       strip_punctuation: bool = False) -> dict[str, list[float]]:
    return {"exact_match": exact_match(answers.predictions, answers.references, ignore_case=ignore_case,
                                       normalize_whitespace=normalize_whitespace,
                                       strip_punctuation=strip_punctuation)}


@metric(
    "contains",
    description="1 when the normalised reference occurs in the answer",
    outputs={"contains": HIGHER},
    binary=("contains",),
    options=_NORMALIZE_OPTIONS,
)
def contains_metric(answers: Answers, *, ignore_case: bool = True, normalize_whitespace: bool = True,
                    strip_punctuation: bool = False) -> dict[str, list[float]]:
    return {"contains": contains(answers.predictions, answers.references, ignore_case=ignore_case,
                                 normalize_whitespace=normalize_whitespace, strip_punctuation=strip_punctuation)}


@metric(
    "regex",
    description="1 when the pattern is found in the answer ({reference} = the escaped reference)",
    outputs={"regex": HIGHER},
    binary=("regex",),
    options={"pattern": "required regular expression", "ignore_case": "default true",
             "normalize_whitespace": "default false"},
)
def regex_metric(answers: Answers, *, pattern: str | None = None, ignore_case: bool = True,
                 normalize_whitespace: bool = False) -> dict[str, list[float]]:
    if not pattern:
        raise HarnessError("metric 'regex' needs a pattern", fix="Add regex: {pattern: '...'} to the task.")
    return {"regex": regex_match(answers.predictions, pattern, references=answers.references,
                                 ignore_case=ignore_case, normalize_whitespace=normalize_whitespace)}


@metric(
    "json",
    description="valid JSON object in the answer (0/1, strict), json_lenient (0/1: JSON or a Python "
    "dict/list literal such as {'a': True}), share of reference fields answered correctly, and "
    "json_field:<name> (0/1, None where the reference lacks the field) per field",
    outputs={"valid_json": HIGHER, "json_lenient": HIGHER, "json_field_acc": HIGHER},
    binary=("valid_json", "json_lenient"),
    dynamic=("json_field:",),
    options={"lenient_json": "default false; true: read Python-literal answers for the field accuracy too"},
)
def json_metric(answers: Answers, *, lenient_json: bool = False) -> dict[str, list[float | None]]:
    r = json_answer(answers.predictions, answers.references, lenient=lenient_json)
    return {"valid_json": r["valid_json"], "json_lenient": r["json_lenient"], "json_field_acc": r["field_acc"],
            **{f"json_field:{k}": v for k, v in r["fields"].items()}}


@metric(
    "length",
    description="answer length in characters / words / generated tokens, and the empty-answer rate",
    outputs={"length_chars": NEUTRAL, "length_words": NEUTRAL, "length_tokens": NEUTRAL, "empty": LOWER},
    binary=("empty",),
)
def length_metric(answers: Answers) -> dict[str, list[float | None]]:
    return length_stats(answers.predictions, answers.n_tokens)
