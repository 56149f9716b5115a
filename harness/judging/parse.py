"""Read a judge's reply: the structured JSON first, then tolerant fall-backs.

Judges are asked for JSON (``{"rationale": str, "score": int}`` or ``{"rationale": str,
"winner": "A"|"B"|"tie"}``) and the backends request a JSON schema, but small or
misconfigured judges still answer "85", "Score: 85/100", "**85**", "Rating: [[8]]",
"[[A]]", "Assistant B is better" or a number somewhere in prose. Everything here is pure
string work; nothing guesses: an ambiguous reply (two different numbers, both A and B)
or an out-of-range score is unparseable, so the caller re-asks or records a missing verdict.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Parsed", "extract_json", "parse_preference", "parse_score"]


@dataclass
class Parsed:
    """Outcome of parsing one reply. ``value`` is None when it could not be read."""

    value: float | str | None
    rationale: str = ""
    error: str | None = None
    how: str = ""  # which rule matched: json, brackets, labelled, fraction, bold, bare, prose

    @property
    def ok(self) -> bool:
        return self.value is not None


_NUM = r"[-+]?\d+(?:\.\d+)?"


def extract_json(text: str) -> dict | None:
    """The first JSON object in a judge reply (bare, fenced, or embedded in prose), else None."""
    from harness.metrics.structured import extract_json as first_json

    return first_json(text or "", objects_only=True)


def _strip_markup(text: str) -> str:
    return text.strip().strip("`*_\"' \t\r\n.:;!")


def _to_number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        s = raw.strip()
        m = re.fullmatch(rf"\**\s*({_NUM})\s*(?:/\s*\d+|점)?\s*\**", s)
        if m:
            return float(m.group(1))
    return None


def _in_range(value: float, lo: float, hi: float, how: str, rationale: str = "") -> Parsed:
    if math.isnan(value) or not (lo <= value <= hi):
        return Parsed(None, rationale, f"score {value:g} is outside the scale {lo:g}-{hi:g}", how)
    if value == int(value):
        value = float(int(value))
    return Parsed(value, rationale, None, how)


_SCORE_KEYS = ("score", "rating", "grade", "점수", "평가", "평점")
_RATIONALE_KEYS = ("rationale", "explanation", "reason", "reasoning", "justification", "이유", "설명")


def _rationale_of(obj: dict) -> str:
    for k in _RATIONALE_KEYS:
        v = obj.get(k)
        if isinstance(v, str):
            return v.strip()
    return ""


def parse_score(text: str | None, lo: float = 0, hi: float = 100) -> Parsed:
    """A score on ``[lo, hi]`` from a judge reply, or ``Parsed(None, error=...)``."""
    if text is None or not str(text).strip():
        return Parsed(None, "", "empty reply", "")
    text = str(text)

    obj = extract_json(text)
    if obj is not None:
        lowered = {str(k).lower(): v for k, v in obj.items()}
        rationale = _rationale_of(lowered)
        for k in _SCORE_KEYS:
            if k in lowered:
                num = _to_number(lowered[k])
                if num is None:
                    return Parsed(
                        None, rationale, f"JSON field {k!r} is not a number: {lowered[k]!r}", "json"
                    )
                return _in_range(num, lo, hi, "json", rationale)
        # a JSON object without a score field: fall through to the text rules

    hi_s = f"{hi:g}"
    rules: list[tuple[str, re.Pattern[str]]] = [
        # MT-Bench style "Rating: [[8]]" / "[[85]]"
        ("brackets", re.compile(rf"\[\[\s*({_NUM})\s*(?:/\s*\d+)?\s*\]\]")),
        # "Score: 85", "score of 85", "Rating - 7/10", "점수: 85점"
        (
            "labelled",
            re.compile(
                rf"(?:score|rating|grade|점수|평점|평가)(?:\s*(?:is|of|was|=|:|-|는|은))?[\s:*\"'(\[]*({_NUM})",
                re.IGNORECASE,
            ),
        ),
        # "85/100", "85 out of 100", "8 / 10"
        ("fraction", re.compile(rf"({_NUM})\s*(?:/|out of|of)\s*{re.escape(hi_s)}\b", re.IGNORECASE)),
        # "85점"
        ("points", re.compile(rf"({_NUM})\s*점")),
        # "**85**"
        ("bold", re.compile(rf"\*\*\s*({_NUM})\s*\*\*")),
    ]
    bare = _strip_markup(text)
    if re.fullmatch(_NUM, bare):
        return _in_range(float(bare), lo, hi, "bare")
    for how, pat in rules:
        found = {float(m.group(1)) for m in pat.finditer(text)}
        if len(found) == 1:
            return _in_range(found.pop(), lo, hi, how, _prose_rationale(text))
        if len(found) > 1:
            return Parsed(None, "", f"ambiguous reply: several {how} scores {sorted(found)}", how)

    # last resort: exactly one distinct number in the prose (the scale bounds excluded)
    nums = [float(m.group(0)) for m in re.finditer(rf"(?<![\w.]){_NUM}(?![\w.]*\w)", text)]
    distinct = {n for n in nums if n not in (float(lo), float(hi))} or set(nums)
    if len(distinct) == 1:
        return _in_range(distinct.pop(), lo, hi, "prose", _prose_rationale(text))
    if not distinct:
        return Parsed(None, "", "no score found in the reply", "")
    return Parsed(None, "", f"ambiguous reply: several numbers {sorted(distinct)[:6]}", "prose")


def _prose_rationale(text: str) -> str:
    t = text.strip()
    return t if len(t) <= 2000 else t[:2000] + "..."


_TIE_WORDS = r"(?:tie|tied|draw|equal|equally good|same quality|both (?:are )?equally|동점|무승부|비슷)"
_WINNER_KEYS = ("winner", "verdict", "better", "preference", "choice", "result", "승자", "판정")


def _choice_token(raw: str) -> str | None:
    s = _strip_markup(str(raw)).strip("[]() ")
    s_low = s.lower()
    if s_low in ("a", "assistant a", "answer a", "response a", "model a", "답변 a", "응답 a"):
        return "A"
    if s_low in ("b", "assistant b", "answer b", "response b", "model b", "답변 b", "응답 b"):
        return "B"
    if s_low in ("c", "tie", "draw", "equal", "none", "both", "동점", "무승부"):
        return "tie"
    return None


def parse_preference(text: str | None) -> Parsed:
    """ "A", "B" or "tie" from a pairwise judge reply, or ``Parsed(None, error=...)``.

    "[[C]]" (MT-Bench's tie) reads as tie.
    """
    if text is None or not str(text).strip():
        return Parsed(None, "", "empty reply", "")
    text = str(text)

    obj = extract_json(text)
    if obj is not None:
        lowered = {str(k).lower(): v for k, v in obj.items()}
        rationale = _rationale_of(lowered)
        for k in _WINNER_KEYS:
            if k in lowered:
                choice = _choice_token(str(lowered[k]))
                if choice is None:
                    return Parsed(
                        None, rationale, f"JSON field {k!r} is not A, B or tie: {lowered[k]!r}", "json"
                    )
                return Parsed(choice, rationale, None, "json")

    choice = _choice_token(text)
    if choice is not None:
        return Parsed(choice, "", None, "bare")

    rationale = _prose_rationale(text)
    brackets = {_choice_token(m.group(1)) for m in re.finditer(r"\[\[\s*([ABCabc]|tie)\s*\]\]", text)}
    brackets.discard(None)
    if len(brackets) == 1:
        return Parsed(brackets.pop(), rationale, None, "brackets")
    if len(brackets) > 1:
        return Parsed(None, "", f"ambiguous reply: several verdicts {sorted(brackets)}", "brackets")

    labelled = {
        _choice_token(m.group(1))
        for m in re.finditer(
            r"(?:winner|verdict|better (?:answer|response)|final answer|승자|판정)\W{0,3}(?:is|:|=|-|는|은)?\W{0,3}"
            r"((?:assistant |answer |response |답변 |응답 )?[AB](?![A-Za-z0-9])|tie\b|C(?![A-Za-z0-9]))",
            text,
            re.IGNORECASE,
        )
    }
    labelled.discard(None)
    if len(labelled) == 1:
        return Parsed(labelled.pop(), rationale, None, "labelled")

    wins = {
        m.group(1).upper()
        for m in re.finditer(
            r"(?:assistant|answer|response|model|답변|응답)\s*([AB])(?![A-Za-z0-9])\W{0,3}"
            r"(?:is|was|wins|gives)?\s*(?:the\s+)?(?:clearly\s+|slightly\s+|much\s+)?(?:better|stronger|superior|wins|preferred|이 더 (?:낫|좋)|가 더 (?:낫|좋))",
            text,
            re.IGNORECASE,
        )
    }
    if len(wins) == 1:
        return Parsed(wins.pop(), rationale, None, "prose")

    mentioned = {
        m.group(1).upper()
        for m in re.finditer(
            r"(?:assistant|answer|response|답변|응답)\s*([AB])(?![A-Za-z0-9])", text, re.IGNORECASE
        )
    }
    tie = (
        re.search(rf"\b{_TIE_WORDS}\b", text, re.IGNORECASE) is not None
        or re.search(r"동점|무승부", text) is not None
    )
    if tie and not wins:
        return Parsed("tie", rationale, None, "prose")
    if len(mentioned) == 1 and not tie:
        return Parsed(mentioned.pop(), rationale, None, "prose")
    return Parsed(None, "", "no verdict (A, B or tie) found in the reply", "")
