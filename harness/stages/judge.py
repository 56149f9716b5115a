"""The judge stage of a run: read stored samples, ask the judge, write verdicts, summarize.

Pointwise judges grade every model's answers; pairwise judges compare each later model with
each earlier one (sft vs base, dpo vs sft, dpo vs base). Verdicts go to
``judge/<judge>/<model or a_vs_b>/<task>.jsonl``; each (judge, model, task) is a work unit, so a
resumed run re-judges nothing that finished, and the disk cache makes re-runs free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.errors import HarnessError


def backend_options(cfg) -> dict[str, Any]:
    jc = cfg.judge
    return {"host": jc.host, "base_url": jc.base_url, "api_key": jc.api_key, "num_ctx": jc.num_ctx,
            "seed": cfg.seed, "batch_size": jc.concurrency,  # batch_size: in-process (hf:) judges
            "scoring": jc.scoring}


def hf_callables(spec: str, plan, pool_factory: Callable[[], Any]) -> dict[str, Callable]:
    """``generate`` / ``format_chat`` / ``loglikelihood`` for an in-process judge, loaded on
    first use. ``loglikelihood([(context, continuation), ...]) -> [log p]`` goes through the
    Engine, so any backend with log-probs (transformers, vLLM) scores the judge.

    When the judge is the same checkpoint as a plain (adapter-free) model of the run, its
    already-loaded base is reused; otherwise the judge model is loaded on its own.
    """
    state: dict[str, Any] = {}

    def served() -> tuple[Any, str]:
        """(the pool that holds the judge model, its name there). Neither is kept here: the plan
        owns both pools, and ``plan.close()`` frees them."""
        if "name" not in state:
            from harness.config import ModelSpec
            from harness.models.resolve import resolve_models

            judge_root = resolve_models({"judge": ModelSpec(path=spec)}, plan.config.base_dir)["judge"]
            same = [n for n, r in plan.resolved.items()
                    if r.root == judge_root.root and not r.adapters and r.gguf_file == judge_root.gguf_file]
            state["name"], state["root"] = (same[0], None) if same else ("judge", judge_root)
        if state["root"] is None:
            return pool_factory(), state["name"]
        if plan.judge_pool is None:
            from harness.models.pool import ModelPool

            plan.judge_pool = ModelPool({"judge": state["root"]})
        return plan.judge_pool, "judge"

    def generate(prompts: list[str]) -> list[str]:
        pool, name = served()
        # judge prompts are already chat-formatted: no prompt format, the raw continuation; a
        # served model's chat format ("server-chat") made JSON messages that go to its chat API
        fmt = state.get("fmt")
        outs = pool.engine(name).generate(prompts, fmt=fmt if getattr(fmt, "name", None) == "server-chat" else None,
                                          max_new_tokens=128, temperature=0.0, seed=plan.config.seed)
        return [g.raw for g in outs]

    def format_chat(messages: list[dict[str, str]]) -> str:
        pool, name = served()
        try:
            fmt = pool.format(name, "chat")
        except HarnessError:
            raise HarnessError(f"judge hf:{spec} has no chat template", fix="Use a chat model as the judge.") from None
        state["fmt"] = fmt
        return fmt.render_messages(messages)

    def loglikelihood(requests: list[tuple[str, str]]) -> list[float]:
        from harness.engine import LOGLIKELIHOOD
        from harness.judging.protocol import LogprobsUnavailable

        pool, name = served()
        engine = pool.engine(name)
        if not engine.info.can(LOGLIKELIHOOD):
            raise LogprobsUnavailable(f"judge hf:{spec} runs on {engine.info.backend} without prompt log-probs")
        return [lp for lp, _ in engine.loglikelihood(list(requests))]

    return {"generate": generate, "format_chat": format_chat, "loglikelihood": loglikelihood}


def _scoring(backend) -> str:
    """How the backend reads verdicts (part of a judge unit's key: switching ``scoring`` re-judges)."""
    ident = backend.identity() if hasattr(backend, "identity") else {}
    return str(ident.get("scoring") or ("logprob" if ident.get("top_logprobs") else "text"))


def _samples(rundir, models: list[str], tasks: list[str], limit: int | None) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in models:
        for t in tasks:
            if rundir.has_samples(m, t):
                ss = rundir.samples(m, t)
                out.setdefault(m, []).extend(ss[:limit] if limit else ss)
    return out


def execute(plan, rundir, progress, pool_factory: Callable[[], Any]) -> None:
    """Every configured judge over the stored samples of the plan's models and tasks."""
    from harness.judging import (
        items_from_samples,
        judge_pairwise,
        judge_pointwise,
        pairs_from_samples,
    )
    from harness.store import unit_key

    jc = plan.config.judge
    backend = plan.judge_backend
    by_model = _samples(rundir, plan.models, [t.name for t in plan.tasks], jc.limit)
    common = {"concurrency": jc.concurrency, "retries": jc.retries, "repeats": jc.repeats}
    for defn in plan.judges:  # loaded and checked while planning
        if defn.kind == "pairwise":
            if len(by_model) < 2:
                continue
            for task in plan.tasks:
                task_by_model = {m: [s for s in ss if s.task == task.name] for m, ss in by_model.items()}
                pairs = pairs_from_samples(task_by_model)
                key = unit_key("judge", defn.hash, backend.spec, _scoring(backend), task.name,
                               [(p.model_a, p.model_b, p.id, p.answer_a, p.answer_b) for p in pairs])
                if rundir.unit_done(key):
                    continue
                t0 = time.perf_counter()
                with progress.bar(f"judge {defn.name} · {task.name}", len(pairs) * 2 * jc.repeats) as update:
                    verdicts = judge_pairwise(defn, backend, pairs, progress=update, **common)
                by_pair: dict[str, list] = {}
                for v in verdicts:
                    by_pair.setdefault(v.model, []).append(v)
                for pair, vs in by_pair.items():
                    rundir.write_verdicts(defn.name, pair, task.name, vs)
                rundir.mark_unit_done(key, {"unit": f"judge {defn.name} pairwise {task.name}",
                                            "seconds": round(time.perf_counter() - t0, 3)})
            continue
        # Every pending (model, task) unit goes into ONE judge call, so an in-process judge batches
        # across models and tasks and a server gets `concurrency` requests in flight throughout.
        pending = []
        for model, samples in by_model.items():
            for task in plan.tasks:
                items = items_from_samples([s for s in samples if s.task == task.name])
                key = unit_key("judge", defn.hash, backend.spec, _scoring(backend), model, task.name, [(i.id, i.answer) for i in items])
                if items and not rundir.unit_done(key):
                    pending.append((model, task.name, key, items))
        if not pending:
            continue
        t0 = time.perf_counter()
        all_items = [it for *_, items in pending for it in items]
        with progress.bar(f"judge {defn.name} · {len(pending)} model×task units", len(all_items) * jc.repeats) as update:
            verdicts = judge_pointwise(defn, backend, all_items, progress=update, **common)
        seconds = round(time.perf_counter() - t0, 3)
        for model, task_name, key, items in pending:
            mine = [v for v in verdicts if v.model == model and v.task == task_name]
            rundir.write_verdicts(defn.name, model, task_name, mine)
            rundir.mark_unit_done(key, {"unit": f"judge {defn.name} {model} {task_name}",
                                        "seconds": round(seconds * len(items) / len(all_items), 3)})
