"""The parity stage: does a fast backend give the numbers transformers gives?

For every evaluated model served by vLLM (``backend: vllm``), the first ``parity.items`` items of
its first task are run again through the transformers engine (the reference implementation)
on the same prompts, and compared:

- greedy agreement: the share of items whose generated answer is the same text;
- log-probability difference: the log-likelihood the backend's own answer gets under each
  engine (``token_nll``), as the largest absolute difference per token (nats) over the items.

The figures go to run.json (``models.<name>.parity``) and the report's model table; over the
configured thresholds they are a warning in the report. The check is one unit per model, so a
resumed run does not repeat it. The vLLM engine is closed first: on an accelerator the two
engines do not fit side by side.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.stages.plan import Plan, describe_model
from harness.store import unit_key


def wanted(plan: Plan) -> list[str]:
    """Models whose backend is checked against transformers (vLLM; served models have no local weights)."""
    if not plan.config.parity.items or not plan.tasks:
        return []
    return [n for n in plan.models if getattr(plan.resolved.get(n), "backend", "hf") == "vllm"]


def execute(plan: Plan, rundir, progress, model_info: dict[str, Any]) -> None:
    cfg = plan.config
    names = wanted(plan)
    if not names:
        return
    task = plan.tasks[0]
    for name in names:
        key = unit_key("parity", name, describe_model(plan, name), task.content_hash(), cfg.generation,
                       cfg.parity.items, cfg.seed)
        if rundir.unit_done(key) or not rundir.has_samples(name, task.name):
            continue
        t0 = time.perf_counter()
        stored = rundir.samples(name, task.name)[: cfg.parity.items]
        pool = plan.pool()
        fmt = pool.format(name, task.prompt_format, Path(task.source).parent if task.source else None)
        backend = pool.engine(name)
        prompts, answers = [s.prompt for s in stored], [s.response for s in stored]
        with progress.bar(f"parity {name} vs transformers (checks)", 3) as update:
            mine = backend.token_nll(prompts, answers)
            update(1, 3)
            pool.close_vllm()
            ref_engine = pool.hf_engine(name)
            theirs = ref_engine.token_nll(prompts, answers)
            update(2, 3)
            ref = ref_engine.generate(prompts, fmt=fmt, max_new_tokens=_max_new_tokens(plan, task), temperature=0.0,
                                      top_p=cfg.generation.top_p, stop=list(cfg.generation.stop)
                                      + list(task.generation.stop), seed=cfg.seed)
            update(3, 3)
        record = compare(answers, [g.text for g in ref], mine, theirs, cfg.parity.max_logprob_diff,
                         cfg.parity.min_agreement)
        record.update(task=task.name, against=f"transformers {ref_engine.info.version}",
                      backend=backend.info.to_dict())
        model_info.setdefault(name, {})["parity"] = record
        rundir.mark_unit_done(key, {"unit": f"parity {name}", "seconds": round(time.perf_counter() - t0, 3)})
        pool.release_hf()
    from harness.stages.generate import save_models

    save_models(rundir, model_info)


def _max_new_tokens(plan: Plan, task) -> int:
    return task.generation.max_new_tokens or plan.config.generation.max_new_tokens


def compare(backend_texts: list[str], reference_texts: list[str], backend_nll: list, reference_nll: list,
            max_logprob_diff: float, min_agreement: float) -> dict[str, Any]:
    """The parity figures of one model (pure; ``*_nll`` are ``engine.NLL`` records of the same texts)."""
    same = sum(a == b for a, b in zip(backend_texts, reference_texts))
    per_token = [abs(a.nll_sum - b.nll_sum) / max(1, a.n_tokens) for a, b in zip(backend_nll, reference_nll)]
    total = [abs(a.nll_sum - b.nll_sum) for a, b in zip(backend_nll, reference_nll)]
    tokens_differ = sum(a.n_tokens != b.n_tokens for a, b in zip(backend_nll, reference_nll))
    n = len(backend_texts)
    out: dict[str, Any] = {
        "items": n,
        "greedy_agree": same,
        "greedy_agreement": same / n if n else None,
        "logprob_max_abs_diff_per_token": max(per_token, default=0.0),
        "logprob_max_abs_diff_sum": max(total, default=0.0),
        "token_count_mismatches": tokens_differ,
        "thresholds": {"max_logprob_diff": max_logprob_diff, "min_agreement": min_agreement},
    }
    problems = []
    if n and same / n < min_agreement:
        problems.append(f"greedy answers agree on {same}/{n} items (threshold {min_agreement:.0%})")
    if out["logprob_max_abs_diff_per_token"] > max_logprob_diff:
        problems.append(f"log-probabilities differ by up to {out['logprob_max_abs_diff_per_token']:.2g} nats per "
                        f"token (threshold {max_logprob_diff:g})")
    if tokens_differ:
        problems.append(f"{tokens_differ} answers tokenized to a different length")
    out["ok"] = not problems
    out["problems"] = problems
    return out
