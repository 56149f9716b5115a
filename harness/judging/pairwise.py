"""Pairwise judging: does ``model_a`` beat ``model_b``? Asked in both orders (A/B swapped);
orders that disagree make a tie, reported as inconsistent. ``meta["orders"]`` keeps each
order's letter (what the reliability card's position figures read), ``meta["method"]`` how
they were read (``logprob``: the likeliest of A / B / tie, ``meta["distribution"]`` per order)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from harness.records import Verdict

from .asker import Outcome, ProgressCallback, make_asker, map_concurrently, repeat_seed
from .backends import JudgeBackend
from .definition import JudgeDefinition
from .items import PairItem


def judge_pairwise(
    defn: JudgeDefinition,
    backend: JudgeBackend,
    pairs: Sequence[PairItem],
    cache_dir: str | os.PathLike | None = None,
    concurrency: int = 4,
    retries: int = 2,
    repeats: int = 1,
    progress: ProgressCallback | None = None,
    *,
    reasks: int = 1,
    backoff: float = 1.0,
    max_backoff: float = 30.0,
    use_cache: bool = True,
    give_up_after: int | None = None,
) -> list[Verdict]:
    """Compare ``model_a`` with ``model_b`` per item, in both orders (A/B swapped).

    One Verdict per pair item: ``model`` = "<a>_vs_<b>", ``winner`` = a, b, "tie", or None
    (missing: either order failed). When the two orders disagree the verdict is a tie and
    ``meta["consistent"]`` is False. With repeats k each order takes the majority of k.
    """
    asker = make_asker(
        defn, "pairwise", backend, cache_dir=cache_dir, use_cache=use_cache, concurrency=concurrency,
        repeats=repeats, retries=retries, reasks=reasks, backoff=backoff, max_backoff=max_backoff,
        give_up_after=give_up_after,
    )

    prepared = []
    for p in pairs:
        ref = p.reference if defn.spec.reference != "unused" else ""
        if defn.spec.reference == "required" and not (ref or "").strip():
            prepared.append(None)
            continue
        prepared.append(
            {
                "ab": defn.render(
                    p.lang, question=p.question, reference=ref, answer_a=p.answer_a, answer_b=p.answer_b
                ),
                "ba": defn.render(
                    p.lang, question=p.question, reference=ref, answer_a=p.answer_b, answer_b=p.answer_a
                ),
            }
        )
    units = [
        (i, order, r)
        for i, msgs in enumerate(prepared)
        if msgs is not None
        for order in ("ab", "ba")
        for r in range(repeats)
    ]

    def work(unit):
        i, order, r = unit
        return asker.ask(prepared[i][order], pairs[i].lang, repeat_seed(backend, r))

    outcomes = dict(zip(units, map_concurrently(units, work, concurrency, progress)))

    verdicts = []
    for i, p in enumerate(pairs):
        meta: dict[str, Any] = {
            "model_a": p.model_a,
            "model_b": p.model_b,
            "lang": p.lang,
            "prompt_lang": defn.prompt_lang(p.lang),
            "len_a": len(p.answer_a),
            "len_b": len(p.answer_b),
            "backend": backend.spec,
            "judge_hash": defn.hash[:16],
        }
        if prepared[i] is None:
            verdicts.append(
                Verdict(
                    **_verdict_id(defn, p),
                    error=f"judge '{defn.name}' needs a reference answer and item has none",
                    meta=meta,
                )
            )
            continue
        outs = {order: [outcomes[(i, order, r)] for r in range(repeats)] for order in ("ab", "ba")}
        verdicts.append(_pairwise_verdict(defn, p, outs, meta))
    return verdicts


def _verdict_id(defn: JudgeDefinition, p: PairItem) -> dict[str, str]:
    return {"id": p.id, "task": p.task, "model": f"{p.model_a}_vs_{p.model_b}", "judge": defn.name}


def _pairwise_verdict(
    defn: JudgeDefinition, p: PairItem, outs_by_order: dict[str, list[Outcome]], meta: dict
) -> Verdict:
    """One Verdict from the outcomes of both orders ("ab": A = model_a, "ba": A = model_b)."""
    vid = _verdict_id(defn, p)
    per_order: dict[str, str | None] = {}
    letters: dict[str, str | None] = {}
    errors, raws, rationales = [], [], {}
    all_outs = []
    dists: dict[str, dict] = {}
    for order in ("ab", "ba"):
        outs = outs_by_order[order]
        all_outs += outs
        ok = [o for o in outs if o.value is not None]
        label = f"[A={p.model_a}, B={p.model_b}]" if order == "ab" else f"[A={p.model_b}, B={p.model_a}]"
        for o in outs:
            raws += [f"{label} {t}" for t in o.raws]
        if not ok:
            per_order[order] = letters[order] = None
            errors.append(
                f"order {label}: " + "; ".join(dict.fromkeys(o.error or "no verdict" for o in outs))
            )
            continue
        letter = _majority([str(o.value) for o in ok])
        letters[order] = letter
        chosen = next((o for o in ok if o.value == letter), ok[0])
        if "distribution" in chosen.meta:
            dists[order] = chosen.meta["distribution"]
        rationales[order] = next((o.rationale for o in ok if o.value == letter), ok[0].rationale)
        # map the letter back to a model-relative side
        if letter == "tie":
            per_order[order] = "tie"
        elif order == "ab":
            per_order[order] = "a" if letter == "A" else "b"
        else:
            per_order[order] = "b" if letter == "A" else "a"
    meta = dict(meta)
    meta["orders"] = letters
    methods = sorted({o.meta.get("method", "text") for o in all_outs if o.value is not None})
    if methods:
        meta["method"] = methods[0] if len(methods) == 1 else "mixed"
    if dists:
        meta["distribution"] = dists  # per order: probabilities of A / B / tie
    meta["requests"] = sum(o.requests for o in all_outs)
    meta["cached"] = all(o.cached for o in all_outs)
    repeats = len(outs_by_order["ab"])
    if repeats > 1:
        meta["repeats"] = repeats
        meta["votes"] = {order: [o.value for o in outs_by_order[order]] for order in ("ab", "ba")}
    raw = "\n\n---\n\n".join(raws)
    if per_order["ab"] is None or per_order["ba"] is None:
        return Verdict(**vid, winner=None, raw=raw, error="; ".join(errors), meta=meta)
    consistent = per_order["ab"] == per_order["ba"]
    meta["consistent"] = consistent
    side = per_order["ab"] if consistent else "tie"
    winner = {"a": p.model_a, "b": p.model_b, "tie": "tie"}[side]
    rationale = " | ".join(
        f"{('A=' + p.model_a) if o == 'ab' else ('A=' + p.model_b)}: {rationales[o]}"
        for o in ("ab", "ba")
        if rationales.get(o)
    )
    return Verdict(**vid, winner=winner, rationale=rationale, raw=raw, meta=meta)


def _majority(choices: list[str]) -> str:
    counts = {c: choices.count(c) for c in set(choices)}
    best = max(counts.values())
    top = [c for c, n in counts.items() if n == best]
    return top[0] if len(top) == 1 else "tie"
