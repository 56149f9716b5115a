"""Verdicts -> the scores.json groups "judge" (pointwise) and "judge-pairwise": means and
win / tie / loss rates with bootstrap intervals, paired tests, missing counts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness.records import Verdict


def count_missing(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """Missing verdicts (score and winner None) per ``Verdict.model``."""
    out: dict[str, int] = {}
    for v in verdicts:
        out.setdefault(v.model, 0)
        if v.score is None and v.winner is None:
            out[v.model] += 1
    return out


def summarize_pointwise(
    verdicts: Sequence[Verdict], models: Sequence[str] | None = None, seed: int = 0
) -> dict[str, Any]:
    """The scores.json group "judge": per model, one MetricValue per judge (mean score, 95%
    bootstrap CI, n, missing), paired bootstrap tests between models on the items both were
    graded on, and info (per-task means, missing counts, spread of repeats)."""
    from harness.metrics.stats import aggregate, compare_models

    judges = list(dict.fromkeys(v.judge for v in verdicts))
    models = list(models) if models is not None else list(dict.fromkeys(v.model for v in verdicts))
    group: dict[str, Any] = {"kind": "judge", "models": {m: {} for m in models}, "paired": [], "info": {}}
    info: dict[str, Any] = {"judges": judges, "missing": {}, "by_task": {}, "spread": {}, "errors": {}}
    for j in judges:
        vj = [v for v in verdicts if v.judge == j]
        keys = list(dict.fromkeys((v.task, v.id) for v in vj))
        per_model: dict[str, list[float | None]] = {}
        for m in models:
            by_key = {(v.task, v.id): v for v in vj if v.model == m}
            if not by_key:
                continue
            scores = [by_key[k].score if k in by_key else None for k in keys]
            present = [by_key[k].score for k in by_key]
            per_model[m] = scores
            group["models"][m][j] = aggregate(present, higher_is_better=True, seed=seed).to_dict()
            info["missing"].setdefault(j, {})[m] = sum(1 for s in present if s is None)
            errs = [by_key[k].error for k in by_key if by_key[k].error]
            if errs:
                info["errors"].setdefault(j, {})[m] = _top_errors(errs)
            spreads = [by_key[k].spread for k in by_key if by_key[k].spread is not None]
            if spreads:
                info["spread"].setdefault(j, {})[m] = {
                    "mean": float(sum(spreads) / len(spreads)),
                    "max": float(max(spreads)),
                }
            tasks = sorted({k[0] for k in by_key})
            for t in tasks:
                vals = [by_key[k].score for k in by_key if k[0] == t and by_key[k].score is not None]
                info["by_task"].setdefault(j, {}).setdefault(t, {})[m] = (
                    float(sum(vals) / len(vals)) if vals else None
                )
        if len(per_model) > 1:
            group["paired"] += [t.to_dict() for t in compare_models(per_model, metric=j, seed=seed)]
        first = next((v for v in vj if v.meta.get("backend")), None)
        if first is not None:
            info.setdefault("backend", first.meta["backend"])
    group["info"] = info
    return group


def _top_errors(errors: list[str], k: int = 3) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for e in errors:
        counts[e[:160]] = counts.get(e[:160], 0) + 1
    return [{"error": e, "count": n} for e, n in sorted(counts.items(), key=lambda x: -x[1])[:k]]


def summarize_pairwise(
    verdicts: Sequence[Verdict], pairs: Sequence[tuple[str, str]] | None = None, seed: int = 0
) -> dict[str, Any]:
    """The scores.json group "judge-pairwise": for each pair "<a>_vs_<b>" the win / tie /
    loss rates of ``a`` (MetricValues over the non-missing verdicts, Wilson intervals) and the
    position-swap consistency rate; info holds counts, inconsistent pairs, missing, and the
    mean length (chars) of winning vs losing answers."""
    from harness.metrics.stats import aggregate

    if pairs is None:
        pairs = list(
            dict.fromkeys(
                (v.meta.get("model_a"), v.meta.get("model_b")) for v in verdicts if v.meta.get("model_a")
            )
        )
    group: dict[str, Any] = {"kind": "judge", "models": {}, "paired": [], "info": {}}
    info: dict[str, Any] = {"pairs": {}, "judges": list(dict.fromkeys(v.judge for v in verdicts))}
    for a, b in pairs:
        name = f"{a}_vs_{b}"
        vs = [v for v in verdicts if v.model == name]
        present = [v for v in vs if v.winner is not None]
        win = [1.0 if v.winner == a else 0.0 for v in present]
        tie = [1.0 if v.winner == "tie" else 0.0 for v in present]
        loss = [1.0 if v.winner == b else 0.0 for v in present]
        consistent = [1.0 if v.meta.get("consistent") else 0.0 for v in present]
        n_missing = len(vs) - len(present)

        def mv(values, hib=True, n_missing=n_missing):
            m = aggregate(values, higher_is_better=hib, seed=seed, binary=True)  # 0/1 per verdict: Wilson
            m.missing = n_missing
            return m.to_dict()

        group["models"][name] = {
            "win": mv(win),
            "tie": mv(tie),
            "loss": mv(loss, hib=False),
            "consistency": mv(consistent),
        }
        win_len, lose_len = [], []
        for v in present:
            if v.winner in (a, b):
                la, lb = v.meta.get("len_a"), v.meta.get("len_b")
                if la is None or lb is None:
                    continue
                win_len.append(la if v.winner == a else lb)
                lose_len.append(lb if v.winner == a else la)
        info["pairs"][name] = {
            "a": a,
            "b": b,
            "n": len(vs),
            "wins": int(sum(win)),
            "ties": int(sum(tie)),
            "losses": int(sum(loss)),
            "missing": n_missing,
            "inconsistent": int(len(present) - sum(consistent)),
            "inconsistent_ids": [f"{v.task}/{v.id}" for v in present if not v.meta.get("consistent")][:50],
            "win_rate_excl_ties": (sum(win) / (sum(win) + sum(loss))) if (sum(win) + sum(loss)) else None,
            "mean_len_winner": _mean(win_len),
            "mean_len_loser": _mean(lose_len),
        }
    group["info"] = info
    return group


def _mean(xs: list[float]) -> float | None:
    return float(sum(xs) / len(xs)) if xs else None
