"""The judge's reliability card: how far its verdicts can be trusted, from the run's own verdicts.

Per judge, each figure is ``{"value": x, "n": n}`` or ``{"value": None, "n": 0, "reason": why}``
(never 0 for "could not be computed"):

* ``missing``               verdicts with no score / winner, of all verdicts
* ``parse_failure``         verdicts missing because no reply could be read, of all verdicts
* ``logprob_share``         verdicts scored from log-probabilities, of the present ones
* ``position_consistency``  pairwise: the same verdict with the answers swapped, of the pairs
                            both orders answered (MT-Bench: GPT-4 65%)
* ``first_slot``            pairwise: share of decided order verdicts (A or B) that chose the
                            answer shown first (0.5 = no position bias)
* ``tie_rate``              pairwise: share of order verdicts that were "tie"
* ``flip_rate``             with ``repeats`` k > 1: items whose k verdicts were not all the same
* ``length_effect``         pairwise: slope of a logistic fit of the preference for ``a``
                            (1 win, 0.5 tie, 0 loss) on (len_a - len_b) / 100 characters, one
                            intercept per model pair; log-odds per 100 characters, with a 95% CI
* ``length_controlled``     pairwise, per model pair: the win rate that fit predicts at zero
                            length difference (AlpacaEval's length-controlled win rate without
                            its instruction-difficulty term), beside the raw win rate

``self_preference`` flags evaluated models from the judge's own model family. Pure functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from harness.records import Verdict

MIN_FIT = 10  # decided verdicts the length fit needs
RIDGE = 0.01  # keeps the fit finite when one model wins every pair
_FAMILIES = ("smollm", "llama", "qwen", "mistral", "mixtral", "gemma", "phi", "gpt", "claude", "deepseek",
             "falcon", "olmo", "exaone", "solar", "granite", "internlm", "glm", "pythia", "bloom", "yi")


def figure(value: float | None, n: int, reason: str = "", **extra: Any) -> dict[str, Any]:
    if value is None:
        return {"value": None, "n": n, "reason": reason or "not computed", **extra}
    return {"value": float(value), "n": int(n), **extra}


def _share(hits: int, n: int, reason: str) -> dict[str, Any]:
    return figure(hits / n, n, count=hits) if n else figure(None, 0, reason)


def _missing(v: Verdict) -> bool:
    return v.score is None and v.winner is None


def common_figures(vs: Sequence[Verdict]) -> dict[str, Any]:
    n = len(vs)
    missing = sum(_missing(v) for v in vs)
    unparseable = sum(1 for v in vs if _missing(v) and "unparseable" in (v.error or ""))
    present = [v for v in vs if not _missing(v)]
    logprob = sum(1 for v in present if v.meta.get("method") == "logprob")
    return {
        "missing": _share(missing, n, "no verdicts"),
        "parse_failure": _share(unparseable, n, "no verdicts"),
        "logprob_share": _share(logprob, len(present), "no verdict present"),
        "flip_rate": flip_rate(present),
    }


def flip_rate(vs: Sequence[Verdict]) -> dict[str, Any]:
    """Items whose k repeats did not all agree (pointwise: scores, pairwise: each order's votes)."""
    flips = n = 0
    for v in vs:
        if "scores" in v.meta:
            vals = [s for s in v.meta["scores"] if s is not None]
            n += 1
            flips += bool(vals) and max(vals) - min(vals) > 1e-9
        elif "votes" in v.meta:
            n += 1
            flips += any(len(set(votes)) > 1 for votes in v.meta["votes"].values())
    return _share(flips, n, "no repeats (judge.repeats is 1: set it to 3 to measure flips)")


def pairwise_figures(vs: Sequence[Verdict]) -> dict[str, Any]:
    present = [v for v in vs if not _missing(v)]
    both = [v for v in present if "consistent" in v.meta]
    letters = [x for v in vs for x in (v.meta.get("orders") or {}).values() if x is not None]
    decided = [x for x in letters if x in ("A", "B")]
    out = {
        "position_consistency": _share(sum(bool(v.meta["consistent"]) for v in both), len(both),
                                       "no pair was answered in both orders"),
        "first_slot": _share(decided.count("A"), len(decided), "no order verdict chose A or B"),
        "tie_rate": _share(letters.count("tie"), len(letters), "no order verdicts"),
    }
    out.update(length_figures(present))
    return out


def length_figures(vs: Sequence[Verdict]) -> dict[str, Any]:
    """The length effect and the length-controlled win rate per pair (see the module doc)."""
    rows = []
    for v in vs:
        a, b, la, lb = (v.meta.get(k) for k in ("model_a", "model_b", "len_a", "len_b"))
        if None in (a, b, la, lb) or v.winner is None:
            continue
        y = 1.0 if v.winner == a else 0.0 if v.winner == b else 0.5
        rows.append((f"{a}_vs_{b}", (la - lb) / 100.0, y))
    pairs = list(dict.fromkeys(r[0] for r in rows))
    if len(rows) < MIN_FIT or len({r[1] for r in rows}) < 2:
        why = (f"{len(rows)} pairwise verdicts with lengths; the fit needs {MIN_FIT}" if len(rows) < MIN_FIT
               else "every pair has the same length difference")
        return {"length_effect": figure(None, len(rows), why), "length_controlled": figure(None, len(rows), why)}
    x = [[1.0 if r[0] == p else 0.0 for p in pairs] + [r[1]] for r in rows]
    beta, se = logistic_fit(x, [r[2] for r in rows])
    slope, s = beta[-1], se[-1]
    per_pair = {}
    for i, p in enumerate(pairs):
        ys = [r[2] for r in rows if r[0] == p]
        per_pair[p] = {"value": _sigmoid(beta[i]), "n": len(ys), "raw": sum(ys) / len(ys)}
    return {
        "length_effect": figure(slope, len(rows), ci=[slope - 1.96 * s, slope + 1.96 * s],
                                unit="log-odds per 100 characters"),
        "length_controlled": {"value": None, "n": len(rows), "pairs": per_pair,
                              "reason": "one value per model pair"},
    }


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def logistic_fit(x: Sequence[Sequence[float]], y: Sequence[float], ridge: float = RIDGE,
                 iters: int = 100) -> tuple[list[float], list[float]]:
    """Coefficients and standard errors of P(y=1) = sigmoid(x . beta), y in [0, 1] (fractional
    outcomes allowed), by Newton / IRLS with an L2 penalty ``ridge / 2 * |beta|^2``."""
    import numpy as np

    X, Y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    beta = np.zeros(X.shape[1])
    penalty = ridge * np.eye(X.shape[1])
    hess = penalty
    for _ in range(iters):
        mu = 1.0 / (1.0 + np.exp(-np.clip(X @ beta, -35, 35)))
        hess = X.T @ (X * (mu * (1 - mu))[:, None]) + penalty
        step = np.linalg.solve(hess, X.T @ (Y - mu) - ridge * beta)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    se = np.sqrt(np.clip(np.diag(np.linalg.inv(hess)), 0, None))
    return [float(b) for b in beta], [float(s) for s in se]


# ------------------------------------------------------------------ self-preference


def _name(spec: str) -> str:
    s = str(spec or "").lower()
    for prefix in ("hf:", "zoo:", "ollama:", "openai:", "vllm:"):
        s = s.removeprefix(prefix)
    return s


def family(spec: str) -> str | None:
    """The model family a spec names (smollm, llama, qwen, ...), or None."""
    name = _name(spec).rsplit("/", 1)[-1]
    for fam in _FAMILIES:
        if re.search(rf"(?<![a-z]){fam}", name):
            return fam
    return None


def model_root(name: str, models: dict[str, Any]) -> str:
    """The checkpoint a configured model stands on: its ``path`` / ``model``, following
    ``base:`` chains of adapters."""
    seen = set()
    while name in models and name not in seen:
        seen.add(name)
        spec = models[name] if isinstance(models[name], dict) else {"path": models[name]}
        if spec.get("path") or spec.get("model"):
            return str(spec.get("path") or spec.get("model"))
        name = str(spec.get("base") or "")
    return name


def self_preference(judge_spec: str | None, models: dict[str, Any], evaluated: Iterable[str]) -> dict[str, Any]:
    if not judge_spec:
        return {"value": None, "models": [], "reason": "no judge model recorded"}
    judge = _name(judge_spec.partition(":")[2] if judge_spec.split(":")[0] in ("hf", "ollama", "openai")
                  else judge_spec)
    jfam = family(judge)
    same = []
    for m in evaluated:
        root = _name(model_root(m, models))
        if root == judge or (jfam is not None and family(root) == jfam):
            same.append(m)
    why = (f"the judge ({judge}) shares its model family ({jfam or judge}) with {', '.join(same)}: "
           "judges tend to prefer their own family's answers" if same else
           f"no evaluated model shares the judge's family ({jfam or 'unknown'})")
    return {"value": bool(same), "models": same, "family": jfam, "reason": why}


def reliability_card(verdicts: Sequence[Verdict], *, judge_spec: str | None = None,
                     models: dict[str, Any] | None = None, evaluated: Sequence[str] = ()) -> dict[str, Any]:
    """The card stored as ``judge_reliability`` in scores.json: figures per judge, the
    self-preference flag, and reference numbers to read them against."""
    judges: dict[str, Any] = {}
    for name in dict.fromkeys(v.judge for v in verdicts):
        vs = [v for v in verdicts if v.judge == name]
        pairwise = any("_vs_" in v.model for v in vs)
        figs = common_figures(vs)
        if pairwise:
            figs.update(pairwise_figures(vs))
        else:
            why = "pointwise judge: no A/B positions (add the pairwise judge)"
            for k in ("position_consistency", "first_slot", "tie_rate", "length_effect", "length_controlled"):
                figs[k] = figure(None, 0, why)
        judges[name] = {"kind": "pairwise" if pairwise else "pointwise", "figures": figs}
    return {
        "judge_model": judge_spec,
        "judges": judges,
        "self_preference": self_preference(judge_spec, models or {}, evaluated),
        "reference": {"position_consistency_gpt4_mtbench": 0.65, "human_agreement_with_ties": 0.63,
                      "human_agreement_without_ties": 0.81},
    }
