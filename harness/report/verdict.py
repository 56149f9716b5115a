"""The answer at a glance: which model is best, and what each model changed against the one before.

Pure: ``verdict(scores)`` reads a scores.json mapping (paired tests, directions, the coverage rule)
and returns a ``Verdict``, whose ``lines()`` the terminal, report.md and report.html all show.

What counts as evidence:
- only metrics with a better direction (lengths and other ``neutral`` metrics never count), and
  not the "other" family either (``empty``, truncation: sanity checks, not quality);
- only the paired test stored in scores.json: ``significant`` is a win or a loss by direction,
  otherwise "no significant difference"; a metric without a stored test is not counted;
- a value below the coverage rule ("insufficient (n=…)" in the report) is not evidence either.

The tally covers the pooled ``all`` group (else every task group) and each benchmark's ``acc``;
preference tasks and judges get lines of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.records import Coverage

# ----------------------------------------------------------------------------- metric families
FAMILIES = ["quality", "structure", "perplexity", "preference", "benchmark", "judge", "other"]
FAMILY_TITLES = {"quality": "Quality", "structure": "Structure and JSON", "perplexity": "Perplexity",
                 "preference": "Preference accuracy", "benchmark": "Benchmarks", "judge": "Judge",
                 "other": "Lengths and other"}
_STRUCTURE = ("json", "field_f1", "field_acc", "regex")
_PERPLEXITY = ("ppl", "perplexity", "bits_per_byte", "nll")
_OTHER = ("length", "empty", "truncat", "n_tokens")


def metric_family(metric: str, neutral: bool = False) -> str:
    """quality / structure / perplexity / other, for grouping rows; neutral metrics are "other"."""
    name = metric.lower()
    if neutral or any(name.startswith(p) for p in _OTHER):
        return "other"
    if any(p in name for p in _PERPLEXITY):
        return "perplexity"
    if any(p in name for p in _STRUCTURE):
        return "structure"
    return "quality"


# ----------------------------------------------------------------------------- records
@dataclass
class PairVerdict:
    """``model`` against ``ref`` (the model before it): the counted metrics by outcome."""

    model: str
    ref: str
    better: list[str] = field(default_factory=list)
    worse: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    thin: list[str] = field(default_factory=list)  # too few items on a side: not evidence
    untested: list[str] = field(default_factory=list)  # no stored paired test: not evidence

    @property
    def counted(self) -> int:
        return len(self.better) + len(self.worse) + len(self.same)

    @property
    def net(self) -> int:
        return len(self.better) - len(self.worse)

    @property
    def tone(self) -> str:
        """"better", "worse", "mixed" or "same": how the sentence is coloured."""
        if self.better and self.worse:
            return "mixed"
        return "better" if self.better else "worse" if self.worse else "same"

    def sentence(self) -> str:
        a, b, n = self.model, self.ref, self.counted
        w, lo, s = self.better, self.worse, self.same
        if n == 0:
            return f"{a} vs {b}: no metric with a paired test to compare"
        if not w and not lo:
            return f"{a} vs {b}: no significant difference on any of {_count(n)}"
        if len(w) + len(lo) <= 3 and len(s) > len(w) + len(lo):
            parts = [f"{_names(w)} (better)"] * bool(w) + [f"{_names(lo)} (worse)"] * bool(lo)
            return f"{a} vs {b}: no significant difference except " + "; ".join(parts)
        if not lo:
            return f"{a} beats {b} on {len(w)} of {_count(n)} (significant)" + _rest(s)
        if not w:
            return f"{a} is worse than {b} on {len(lo)} of {_count(n)} (significant)" + _rest(s)
        worse = f"worse on {_names(lo)}" if len(lo) <= 3 else f"worse on {len(lo)}"
        better = f"better on {_names(w)}" if len(w) <= 3 else f"better on {len(w)}"
        return f"{a} vs {b}: {better}, {worse} of {_count(n)} (significant)" + _rest(s)


@dataclass
class Verdict:
    models: list[str]
    best: list[str]  # empty: no significant difference anywhere (or one model)
    pairs: list[PairVerdict]
    extra: list[str]  # preference and judge lines
    notes: list[str]  # what was left out and why

    @property
    def headline(self) -> str:
        if len(self.models) < 2:
            return f"One model ({', '.join(self.models) or 'none'}): nothing to compare."
        if not any(p.counted for p in self.pairs):
            return "No paired tests: the models cannot be compared on these scores."
        if not self.best:
            return "No model is significantly better than another."
        if len(self.best) == 1:
            return f"Best: {self.best[0]}."
        return f"Best: {' and '.join(self.best)} (tied: neither beats the other overall)."

    def lines(self) -> list[str]:
        """Headline, one sentence per consecutive pair, then preference / judge lines and notes."""
        return [self.headline] + [p.sentence() + "." for p in self.pairs] + self.extra + self.notes


def _count(n: int) -> str:
    return f"{n} metric" + ("s" if n != 1 else "")


def _names(names: list[str]) -> str:
    return ", ".join(names)


def _rest(same: list[str]) -> str:
    if not same:
        return ""
    return f"; no significant difference on {_names(same)}" if len(same) <= 3 else ""


# ----------------------------------------------------------------------------- reading scores
def _mv(group: dict, model: str, metric: str) -> dict | None:
    mv = ((group.get("models") or {}).get(model) or {}).get(metric)
    return mv if isinstance(mv, dict) else None


def _readable(mv: dict | None, coverage: Coverage) -> bool:
    if mv is None or not isinstance(mv.get("value"), (int, float)) or not math.isfinite(mv["value"]):
        return False
    return coverage.shortfall(mv) is None


def _direction(group: dict, metric: str, models: list[str]) -> bool | None:
    if metric in ((group.get("info") or {}).get("neutral") or ()):
        return None
    for m in models:
        mv = _mv(group, m, metric)
        if mv is not None:
            hib = mv.get("higher_is_better", True)
            return None if hib is None else bool(hib)
    return None


def _test(group: dict, metric: str, a: str, b: str) -> tuple[dict | None, int]:
    """The stored paired test of a vs b (sign +1) or b vs a (sign -1)."""
    for p in group.get("paired") or []:
        if isinstance(p, dict) and p.get("metric") == metric:
            if p.get("a") == a and p.get("b") == b:
                return p, 1
            if p.get("a") == b and p.get("b") == a:
                return p, -1
    return None, 1


def _metric_names(group: dict, models: list[str]) -> list[str]:
    names: list[str] = []
    for m in models:
        for k in (group.get("models") or {}).get(m) or {}:
            if k not in names:
                names.append(k)
    return names


def evidence(scores: dict) -> list[tuple[str, str, str]]:
    """(label, group, metric) of every metric the tally counts, in report order."""
    groups = {k: v for k, v in (scores.get("groups") or {}).items() if isinstance(v, dict)}
    models = [str(m) for m in scores.get("models") or []]
    out: list[tuple[str, str, str]] = []
    tasks = [g for g, d in groups.items() if d.get("kind") == "task" and g != "all"
             and (d.get("info") or {}).get("type") != "preference"]
    for g in (["all"] if "all" in groups else tasks):
        prefix = "" if g == "all" else f"{g} "
        out += [(f"{prefix}{k}", g, k) for k in _metric_names(groups[g], models)
                if _direction(groups[g], k, models) is not None and metric_family(k) != "other"]
    for g, d in groups.items():
        if d.get("kind") == "benchmark" and "acc" in _metric_names(d, models):
            out.append((f"{g} acc", g, "acc"))
    return out


def compare_pair(scores: dict, a: str, b: str, metrics: list[tuple[str, str, str]] | None = None) -> PairVerdict:
    """``a`` against ``b`` on the counted metrics (``evidence(scores)`` unless given)."""
    groups = scores.get("groups") or {}
    coverage = Coverage.from_dict(scores.get("coverage"))
    pv = PairVerdict(a, b)
    for label, g, metric in evidence(scores) if metrics is None else metrics:
        group = groups.get(g) or {}
        hib = _direction(group, metric, [a, b])
        ma, mb = _mv(group, a, metric), _mv(group, b, metric)
        if hib is None or ma is None or mb is None:
            continue
        if not (_readable(ma, coverage) and _readable(mb, coverage)):
            pv.thin.append(label)
            continue
        test, sign = _test(group, metric, a, b)
        if test is None or not isinstance(test.get("diff"), (int, float)):
            pv.untested.append(label)
            continue
        diff = sign * float(test["diff"])
        if test.get("significant") and diff != 0:
            (pv.better if (diff > 0) == hib else pv.worse).append(label)
        else:
            pv.same.append(label)
    return pv


def _best(models: list[str], scores: dict, metrics: list[tuple[str, str, str]]) -> list[str]:
    """Copeland ranking over every pair: +1 for each model a model beats on balance (more
    significant wins than losses), −1 for each that beats it. Empty when nothing separates them."""
    points = {m: 0 for m in models}
    decided = False
    for j, a in enumerate(models):
        for b in models[:j]:
            net = compare_pair(scores, a, b, metrics).net
            if net:
                decided = True
                win, lose = (a, b) if net > 0 else (b, a)
                points[win] += 1
                points[lose] -= 1
    if not decided:
        return []
    top = max(points.values())
    return [m for m in models if points[m] == top]


# ----------------------------------------------------------------------------- preference / judge lines
def _fmt(v: Any, dec: int) -> str:
    return f"{v:.{dec}f}" if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def _dec(values: list[Any]) -> int:
    mags = [abs(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    top = max(mags) if mags else 0.0
    return 3 if top < 10 else 2 if top < 100 else 1


def value_line(label: str, group: dict, metric: str, models: list[str], coverage: Coverage) -> str | None:
    """"label: base 0.550 · sft 0.600 · dpo 0.850; dpo − sft +0.250 (significant)"."""
    mvs = {m: _mv(group, m, metric) for m in models}
    if not any(mv is not None for mv in mvs.values()):
        return None
    dec = _dec([mv.get("value") for mv in mvs.values() if mv])
    shorts = {coverage.shortfall(mv) for mv in mvs.values() if mv is not None}
    if len(shorts) == 1 and None not in shorts:
        return f"{label}: insufficient for every model ({shorts.pop()})"
    cells = []
    for m, mv in mvs.items():
        if mv is None:
            continue
        short = coverage.shortfall(mv)
        cells.append(f"{m} " + (f"insufficient ({short})" if short and mv.get("value") is not None
                                else _fmt(mv.get("value"), dec)))
    diffs = []
    for i in range(1, len(models)):
        a, b = models[i], models[i - 1]
        if not (_readable(mvs.get(a), coverage) and _readable(mvs.get(b), coverage)):
            continue
        test, sign = _test(group, metric, a, b)
        if test is None or not isinstance(test.get("diff"), (int, float)):
            continue
        diff = sign * float(test["diff"])
        mark = "significant" if test.get("significant") else "not significant"
        diffs.append(f"{a} − {b} {diff:+.{dec}f} ({mark})")
    return f"{label}: " + " · ".join(cells) + ("; " + ", ".join(diffs) if diffs else "")


def _pairwise_line(name: str, info: dict, models: list[str]) -> str | None:
    mat = info.get("matrix")
    if not isinstance(mat, dict):
        return None
    parts = []
    for i in range(1, len(models)):
        a, b = models[i], models[i - 1]
        rec = (mat.get(a) or {}).get(b)
        if isinstance(rec, dict):
            ties = f", {int(rec.get('tie') or 0)} ties" if rec.get("tie") else ""
            parts.append(f"{a} vs {b} won {int(rec.get('win') or 0)}, lost {int(rec.get('loss') or 0)}{ties}")
    return f"pairwise judge {name}: " + "; ".join(parts) if parts else None


def extra_lines(scores: dict, models: list[str]) -> list[str]:
    groups = {k: v for k, v in (scores.get("groups") or {}).items() if isinstance(v, dict)}
    coverage = Coverage.from_dict(scores.get("coverage"))
    out = []
    for g, d in groups.items():
        if d.get("kind") == "task" and (d.get("info") or {}).get("type") == "preference":
            line = value_line(f"preference accuracy ({g})", d, "pref_acc", models, coverage)
            if line:
                out.append(line)
    for g, d in groups.items():
        if d.get("kind") != "judge":
            continue
        info = d.get("info") or {}
        small = " (small local judge: indicative only)" if info.get("small_local") else ""
        if isinstance(info.get("matrix"), dict):
            line = _pairwise_line(str(info.get("judge") or g), info, models)
            if line:
                out.append(line + small)
            continue
        for k in _metric_names(d, models):
            line = value_line(f"judge {k}", d, k, models, coverage)
            if line:
                out.append(line + small)
    return out


def verdict(scores: dict, models: list[str] | None = None) -> Verdict:
    """The verdict of one run's scores.json (see the module docstring for what counts);
    ``models``: their order (default: scores.json's)."""
    models = [str(m) for m in (models if models is not None else scores.get("models") or [])]
    scores = {**scores, "models": models}
    metrics = evidence(scores)
    pairs = [compare_pair(scores, models[i], models[i - 1], metrics) for i in range(1, len(models))]
    notes = []
    thin = sorted({t for p in pairs for t in p.thin})
    if thin:
        notes.append("Not counted (too few items to read): " + ", ".join(thin) + ".")
    untested = sorted({t for p in pairs for t in p.untested})
    if untested:
        notes.append("Not counted (no paired test stored): " + ", ".join(untested) + ".")
    return Verdict(models=models, best=_best(models, scores, metrics) if len(models) > 1 else [],
                   pairs=pairs, extra=extra_lines(scores, models), notes=notes)
