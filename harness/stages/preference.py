"""The preference stage: one unit per model x preference task -> ``samples/<model>/<task>.jsonl``.

A preference task's rows are prompt / chosen / rejected (the trl DPO format). For each row the
model's Engine scores both answers given the prompt (``token_nll``: the answer's tokens and the
format's end-of-turn marker, never the prompt's), the prompt rendered exactly as generation
renders it (``pool.format``, the task's or the model's system prompt). Each row becomes a Sample
whose metrics are the ``preference`` metric's per-pair values (harness/metrics/preference.py);
the score stage aggregates them with intervals and paired tests like every per-sample metric.

A model with a reference (the configured model one adapter below it in its chain: for
``dpo: {adapter: dpo, base: sft}`` that is ``sft``, scored on the same texts, as in DPO training)
also gets DPO's implicit reward margin, with
``beta`` from its ``harness-train.json`` (kind dpo) or 0.1; an adapter whose manifest says it is
not DPO (kind sft) gets none.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records import Sample
from harness.stages.plan import Plan, describe_model, train_manifest
from harness.store import unit_key
from harness.tasks import TaskSpec


def reference_model(plan: Plan, name: str) -> str | None:
    """The configured model ``name`` was trained against: same root, its adapters minus the last.
    None for a model without adapters, when no configured model is that one, or when the
    adapter's training manifest says it is not a DPO adapter."""
    r = plan.resolved.get(name)
    if r is None or not r.adapters:
        return None
    kind = (train_manifest(plan, name) or {}).get("kind")
    if kind is not None and kind != "dpo":
        return None
    below = list(r.adapters[:-1])
    for other, o in plan.resolved.items():
        if other != name and (o.root, o.gguf_file, list(o.adapters)) == (r.root, r.gguf_file, below):
            return other
    return None


def dpo_beta(plan: Plan, name: str) -> tuple[float, str]:
    """(beta, where it came from): the DPO training manifest's, else trl's default 0.1."""
    from harness.metrics.preference import DEFAULT_BETA

    manifest = train_manifest(plan, name) or {}
    beta = (manifest.get("hyperparameters") or {}).get("beta")
    if manifest.get("kind") == "dpo" and isinstance(beta, (int, float)) and not isinstance(beta, bool):
        return float(beta), "harness-train.json"
    return DEFAULT_BETA, f"default {DEFAULT_BETA} (no DPO training manifest)"


def scoring_texts(plan: Plan, name: str, task: TaskSpec) -> tuple[list[str], list[str]]:
    """(prompts, targets): every item's chosen answers, then its rejected answers, rendered the way
    model ``name`` is prompted (its reference is scored on the same texts, as in DPO training)."""
    from harness.train.evaluate import scored_texts

    pool = plan.pool()
    fmt = pool.format(name, task.prompt_format, Path(task.source).parent if task.source else None)
    system = task.system_prompt or pool.system_prompt(name)
    prompts, targets = [], []
    for key in ("chosen", "rejected"):
        for s in plan.items[task.name]:
            prompt, target = scored_texts(s.instruction, s.input, s.meta[key], fmt, system)
            prompts.append(prompt)
            targets.append(target)
    return prompts, targets


def answer_logprobs(plan: Plan, name: str, task: TaskSpec, texts: tuple[list[str], list[str]]) -> tuple[list, list]:
    """(chosen, rejected) ``AnswerLogprob`` per item of ``task`` under model ``name``'s Engine."""
    from harness.engine import LOGLIKELIHOOD
    from harness.metrics.preference import AnswerLogprob

    engine = plan.pool().engine(name)
    if not engine.info.can(LOGLIKELIHOOD):
        raise HarnessError(f"models.{name}: the {engine.info.backend} backend gives no log-probabilities, which "
                           f"preference task {task.name} needs", fix="Evaluate this model in-process (hf) or "
                           "on a server that returns prompt log-probs, or drop the preference task (--tasks).")
    scored = [AnswerLogprob(-n.nll_sum, n.n_tokens) for n in engine.token_nll(*texts)]
    half = len(plan.items[task.name])
    return scored[:half], scored[half:]


def _samples(plan: Plan, name: str, task: TaskSpec, prompts: list[str], mine: tuple[list, list], ref: str | None,
             theirs: tuple[list, list] | None, beta: tuple[float, str]) -> list[Sample]:
    from harness.metrics.preference import pair_values

    out = []
    for k, s in enumerate(plan.items[task.name]):
        c, r = mine[0][k], mine[1][k]
        rc, rr = (theirs[0][k], theirs[1][k]) if theirs is not None else (None, None)
        meta: dict[str, Any] = {**s.meta, "logp_chosen": c.logprob, "logp_rejected": r.logprob,
                                "tokens_chosen": c.n_tokens, "tokens_rejected": r.n_tokens}
        if ref is not None:
            meta.update(reference=ref, ref_logp_chosen=rc.logprob, ref_logp_rejected=rr.logprob,
                        beta=beta[0], beta_source=beta[1])
        # the "response" is the answer the model scores higher; nothing is generated
        out.append(Sample(**{**s.to_dict(), "model": name, "prompt": prompts[k], "response": s.meta["chosen"] if c.logprob > r.logprob
                             else s.meta["rejected"], "meta": meta,
                             "metrics": pair_values(c, r, ref_chosen=rc, ref_rejected=rr, beta=beta[0])}))
    return out


def execute(plan: Plan, rundir, progress, model_info: dict[str, Any]) -> None:
    """One unit per model x preference task not already done: both answers scored through the
    model's Engine (and its reference's), per-pair values written as samples, marked done."""
    cfg = plan.config
    cache: dict[str, tuple[list, list]] = {}  # a reference evaluated itself is scored once

    def scores(name: str, task: TaskSpec, texts: tuple[list[str], list[str]]) -> tuple[list, list]:
        key = unit_key(name, task.name, texts)
        if key not in cache:
            cache[key] = answer_logprobs(plan, name, task, texts)
        return cache[key]

    for name in plan.models:
        ref = reference_model(plan, name)
        beta = dpo_beta(plan, name)
        for task in plan.preference_tasks:
            key = unit_key("preference", name, describe_model(plan, name), task.content_hash(), cfg.limit,
                           ref and describe_model(plan, ref), beta[0] if ref else None)
            if rundir.unit_done(key):
                continue
            t0 = time.perf_counter()
            with progress.bar(f"preference {name} · {task.name} (pairs)", len(plan.items[task.name])) as update:
                texts = scoring_texts(plan, name, task)
                mine = scores(name, task, texts)
                theirs = scores(ref, task, texts) if ref is not None else None
                update(len(plan.items[task.name]))
            rundir.write_samples(name, task.name, _samples(plan, name, task, texts[0], mine, ref, theirs, beta))
            rundir.mark_unit_done(key, {"unit": f"preference {name} {task.name}",
                                        "seconds": round(time.perf_counter() - t0, 3)})
            if name not in model_info:
                pool = plan.pool()
                fmt = pool.format(name)
                model_info[name] = {**pool.describe(name), "template": fmt.name, "template_hash": fmt.template_hash,
                                    "train_manifest": train_manifest(plan, name)}
