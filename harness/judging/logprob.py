"""Log-prob scoring (G-Eval style): a judge's verdict read from token probabilities, not text.

Pointwise: the probability-weighted mean of the allowed scores. Pairwise: the probabilities of
the verdicts A / B / tie. Everything here is pure arithmetic over log-probabilities; the
backends supply them in one of two shapes:

* **candidates** (in-process judges): the judge's prompt is rendered with the reply started
  (``{"score": `` or ``{"winner": "``) and every allowed continuation is scored with the
  Engine's ``loglikelihood``. A score continuation is the number followed by ``}`` or ``,``
  (both scored, probabilities added), so "10" is not counted as the start of "100"; a verdict
  continuation is just ``A``, ``B`` or ``tie`` (one token each in most vocabularies, so the
  Engine scores all three from one forward pass, as lm-eval does for one-token answers). Scales of
  at most 11 values score every value; wider scales score 11 evenly spaced values
  (0-100: 0, 10, ..., 100) and the expected value interpolates between them.
* **top log-probs of a generated reply** (OpenAI-compatible and Ollama servers): the position
  where the score (or winner) is written in the JSON reply is found, and the alternatives the
  server lists there are read. A number written as one token: each alternative that is a whole
  number on the scale counts as that score. A number split over several tokens (digit-by-digit
  tokenizers): each digit position's expected value given the digits before it (linearity of
  expectation), alternatives of another length ignored.

Probabilities are renormalised over the allowed answers; ``mass`` keeps how much of the
listed probability they had before that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SCORE_PREFIX = '{"score": '
WINNER_PREFIX = '{"winner": "'
SCORE_ENDS = ("}", ",")
VERDICTS = ("A", "B", "tie")
TOP = 5  # distribution entries kept in a Verdict's meta

# one generated token: (text, logprob, [(alternative text, logprob), ...])
TokenLogprobs = tuple[str, float, Sequence[tuple[str, float]]]


@dataclass
class Scored:
    """A verdict read from probabilities: ``value`` (expected score, or the likeliest of A / B /
    tie), the renormalised distribution, and the probability mass it came from."""

    value: float | str
    distribution: dict[str, float]
    mass: float = 1.0
    expected: float | None = None  # pointwise: the expected score (== value)
    notes: dict[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        top = sorted(self.distribution.items(), key=lambda kv: -kv[1])[:TOP]
        out: dict[str, Any] = {"method": "logprob", "distribution": {k: round(p, 6) for k, p in top},
                               "mass": round(self.mass, 6)}
        if self.expected is not None:
            out["expected"] = self.expected
        out.update(self.notes)
        return out


def score_values(lo: int, hi: int) -> list[int]:
    """The scores a pointwise judge is scored on: every value of scales with at most 11 values,
    else 11 evenly spaced ones (rounded): 0-100 -> 0, 10, ..., 100; 1-100 -> 1, 11, ..., 100."""
    if hi - lo <= 10:
        return list(range(lo, hi + 1))
    return sorted({lo + round(i * (hi - lo) / 10) for i in range(11)})


def candidates(kind: str, lo: int = 0, hi: int = 0) -> tuple[str, list[tuple[str, str]]]:
    """(reply prefix, [(label, continuation), ...]) for candidate scoring."""
    if kind == "pointwise":
        return SCORE_PREFIX, [(str(v), f"{v}{end}") for v in score_values(lo, hi) for end in SCORE_ENDS]
    return WINNER_PREFIX, [(v, v) for v in VERDICTS]


def _normalise(weights: dict[str, float]) -> tuple[dict[str, float], float]:
    total = sum(weights.values())
    if total <= 0 or not math.isfinite(total):
        return {}, 0.0
    return {k: w / total for k, w in weights.items()}, total


def from_candidates(kind: str, labelled: Sequence[tuple[str, float]]) -> Scored:
    """The verdict from (label, log p(continuation)) pairs: probabilities added per label and
    renormalised (log-sum-exp, so tiny probabilities do not underflow to a zero total)."""
    by_label: dict[str, list[float]] = {}
    for label, lp in labelled:
        by_label.setdefault(label, []).append(float(lp))
    top = max(max(v) for v in by_label.values())
    weights = {k: sum(math.exp(x - top) for x in v) for k, v in by_label.items()}
    dist, total = _normalise(weights)
    mass = min(1.0, total * math.exp(top))
    if kind == "pointwise":
        expected = sum(float(k) * p for k, p in dist.items())
        return Scored(expected, dist, mass, expected)
    return Scored(_likeliest(dist), dist, mass)


def _likeliest(dist: dict[str, float]) -> str:
    best = max(dist.values())
    tops = [k for k in VERDICTS if dist.get(k, 0.0) >= best - 1e-12]
    return tops[0] if len(tops) == 1 else "tie"


# ------------------------------------------------------------- top log-probs of a reply

_SCORE_AT = re.compile(r'"(?:score|rating|grade)"\s*:\s*"?(\d+)')
_WINNER_AT = re.compile(r'"(?:winner|verdict)"\s*:\s*"')
_BARE = re.compile(r"^\s*(\d+)\s*$")


def _spans(tokens: Sequence[TokenLogprobs]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for text, _, _ in tokens:
        out.append((pos, pos + len(text)))
        pos += len(text)
    return out


def _core(text: str) -> str:
    """An alternative token without surrounding blanks, quotes and JSON punctuation."""
    return text.strip().strip('"').rstrip("},").strip()


def score_from_tokens(tokens: Sequence[TokenLogprobs], lo: int, hi: int) -> Scored | None:
    """The expected score at the position the reply writes its score, or None when the reply
    has no score there (not JSON, no log-probs) or no alternative is a score on the scale."""
    text = "".join(t for t, _, _ in tokens)
    m = _SCORE_AT.search(text) or _BARE.match(text)
    if not m:
        return None
    ds, de = m.start(1), m.end(1)
    spans = _spans(tokens)
    idx = [i for i, (s, e) in enumerate(spans) if s < de and e > ds]
    if not idx:
        return None
    if len(idx) == 1:  # the whole number is one token: its alternatives are whole scores
        weights: dict[str, float] = {}
        listed = 0.0
        for alt, lp in _alternatives(tokens[idx[0]]):
            p = math.exp(lp)
            listed += p
            core = _core(alt)
            if core.isdigit() and lo <= int(core) <= hi:
                weights[str(int(core))] = weights.get(str(int(core)), 0.0) + p
        dist, total = _normalise(weights)
        if not dist:
            return None
        expected = sum(float(k) * p for k, p in dist.items())
        return Scored(expected, dist, total / listed if listed else 0.0, expected)
    # digit by digit: E[value] = sum over positions of E[digits there | chosen digits before] * 10^(later digits)
    digits = text[ds:de]
    pieces = [text[max(spans[i][0], ds):min(spans[i][1], de)] for i in idx]
    expected, later = 0.0, len(digits)
    first: dict[str, float] = {}
    masses = []
    for j, (i, piece) in enumerate(zip(idx, pieces)):
        later -= len(piece)
        weights = {}
        listed = 0.0
        for alt, lp in _alternatives(tokens[i]):
            p = math.exp(lp)
            listed += p
            core = _core(alt)
            if core.isdigit() and len(core) == len(piece):
                weights[core] = weights.get(core, 0.0) + p
        dist, total = _normalise(weights)
        if not dist:
            return None
        masses.append(total / listed if listed else 0.0)
        expected += sum(int(k) * p for k, p in dist.items()) * 10**later
        if j == 0:
            rest = digits[len(piece):]
            for k, p in dist.items():
                first[str(int(k + rest))] = first.get(str(int(k + rest)), 0.0) + p
    expected = min(float(hi), max(float(lo), expected))
    return Scored(expected, first, min(masses), expected, {"digit_positions": len(idx)})


def verdict_from_tokens(tokens: Sequence[TokenLogprobs]) -> Scored | None:
    """The probabilities of A / B / tie at the position the reply writes its winner, or None."""
    text = "".join(t for t, _, _ in tokens)
    m = _WINNER_AT.search(text)
    if not m:
        return None
    at = m.end()
    spans = _spans(tokens)
    i = next((k for k, (s, e) in enumerate(spans) if s <= at < e), None)
    if i is None:
        return None
    head = text[spans[i][0]:at]  # the part of the token before the value (a quote, a blank)
    if head.strip(' "'):
        return None
    weights: dict[str, float] = {}
    listed = 0.0
    for alt, lp in _alternatives(tokens[i]):
        p = math.exp(lp)
        listed += p
        label = _verdict_label(alt)
        if label:
            weights[label] = weights.get(label, 0.0) + p
    dist, total = _normalise(weights)
    if not dist:
        return None
    return Scored(_likeliest(dist), dist, total / listed if listed else 0.0)


def _verdict_label(token: str) -> str | None:
    core = token.strip().strip('"').strip()
    if core in ("A", "B"):
        return core
    if core and "tie".startswith(core.lower()):  # "t", "ti", "tie": after '"winner": "' only tie starts so
        return "tie"
    return None


def _alternatives(token: TokenLogprobs) -> list[tuple[str, float]]:
    """The chosen token and its listed alternatives, each text once."""
    text, lp, alts = token
    seen: dict[str, float] = {text: lp}
    for t, alp in alts:
        seen.setdefault(t, alp)
    return list(seen.items())
