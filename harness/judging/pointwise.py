"""Pointwise judging: grade each answer on the judge's scale; k repeats keep the median.

A verdict that fails is missing (``score=None``, the raw replies and the error kept), never 0.
``meta["method"]`` says how it was scored: ``logprob`` (the expected score over the allowed
scores, with ``distribution`` and ``expected``) or ``text`` (parsed from the reply).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

from harness.records import Verdict

from .asker import Outcome, ProgressCallback, make_asker, map_concurrently, repeat_seed
from .backends import JudgeBackend
from .definition import JudgeDefinition
from .items import JudgeItem


def judge_pointwise(
    defn: JudgeDefinition,
    backend: JudgeBackend,
    items: Sequence[JudgeItem],
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
    """Grade every item; one Verdict per item, in order.

    retries: extra tries per request on transport errors (backoff * 2**i seconds between);
    reasks: extra questions when a reply cannot be parsed; repeats: k judgements with seeds
    seed..seed+k-1, the median kept and max-min stored as ``spread``. cache_dir None ->
    ``default_cache_dir()``; ``use_cache=False`` disables it. give_up_after: once that many
    units in a row failed in transport (after their retries), the rest are not sent and come
    back missing (None -> max(8, 2 * concurrency); 0 = never). A verdict that fails is
    missing: ``score=None`` with ``error`` and ``raw`` set.
    """
    asker = make_asker(
        defn, "pointwise", backend, cache_dir=cache_dir, use_cache=use_cache, concurrency=concurrency,
        repeats=repeats, retries=retries, reasks=reasks, backoff=backoff, max_backoff=max_backoff,
        give_up_after=give_up_after,
    )

    prepared: list[tuple[list[dict] | None, str | None]] = []
    for it in items:
        if defn.spec.reference == "required" and not (it.reference or "").strip():
            prepared.append((None, f"judge '{defn.name}' needs a reference answer and item has none"))
            continue
        ref = it.reference if defn.spec.reference != "unused" else ""
        prepared.append((defn.render(it.lang, question=it.question, reference=ref, answer=it.answer), None))

    units = [(i, r) for i, (msgs, _) in enumerate(prepared) if msgs is not None for r in range(repeats)]

    def work(unit):
        i, r = unit
        return asker.ask(prepared[i][0], items[i].lang, repeat_seed(backend, r))

    outcomes = dict(zip(units, map_concurrently(units, work, concurrency, progress)))

    verdicts = []
    for i, it in enumerate(items):
        msgs, pre_error = prepared[i]
        base_meta = {
            "lang": it.lang,
            "prompt_lang": defn.prompt_lang(it.lang),
            "backend": backend.spec,
            "judge_hash": defn.hash[:16],
        }
        if msgs is None:
            verdicts.append(
                Verdict(
                    id=it.id, task=it.task, model=it.model, judge=defn.name, error=pre_error, meta=base_meta
                )
            )
            continue
        outs = [outcomes[(i, r)] for r in range(repeats)]
        verdicts.append(_pointwise_verdict(defn, it, outs, base_meta))
    return verdicts


def _method_meta(ok: Sequence[Outcome], closest: Outcome) -> dict:
    """How the verdict was scored (logprob | text | mixed) and, for log-prob scoring, the
    distribution, expected score and probability mass of the repeat the verdict keeps."""
    methods = sorted({o.meta.get("method", "text") for o in ok})
    out = {k: v for k, v in closest.meta.items() if k != "method"}
    out["method"] = methods[0] if len(methods) == 1 else "mixed"
    return out


def _join_raws(outs: Sequence[Outcome]) -> str:
    parts = []
    for o in outs:
        parts.extend(o.raws)
    return "\n\n---\n\n".join(parts)


def _pointwise_verdict(defn: JudgeDefinition, it: JudgeItem, outs: list[Outcome], meta: dict) -> Verdict:
    ok = [o for o in outs if o.value is not None]
    meta = dict(meta)
    meta["requests"] = sum(o.requests for o in outs)
    meta["cached"] = all(o.cached for o in outs)
    meta["parse"] = sorted({o.how for o in ok})
    errors = [o.error for o in outs if o.error]
    if len(outs) > 1:
        meta["repeats"] = len(outs)
        meta["scores"] = [o.value for o in outs]
    if not ok:
        return Verdict(
            id=it.id,
            task=it.task,
            model=it.model,
            judge=defn.name,
            score=None,
            raw=_join_raws(outs),
            error="; ".join(dict.fromkeys(errors)) or "no verdict",
            meta=meta,
        )
    values = [float(o.value) for o in ok]
    score = float(statistics.median(values))
    closest = min(ok, key=lambda o: abs(float(o.value) - score))
    meta.update(_method_meta(ok, closest))
    if errors:
        meta["repeat_errors"] = errors
    return Verdict(
        id=it.id,
        task=it.task,
        model=it.model,
        judge=defn.name,
        score=score,
        rationale=closest.rationale,
        raw=_join_raws(outs),
        spread=(max(values) - min(values)) if len(outs) > 1 else None,
        meta=meta,
    )
