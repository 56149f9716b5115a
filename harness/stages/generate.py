"""The generate stage: one unit per model x task -> ``samples/<model>/<task>.jsonl``.

Prompts are rendered with the format the model pool decides, answers come from the model's
Engine (or from a responses file made elsewhere), per-sample metrics are computed at once, and
each finished unit is written and marked done before the next starts (resume skips it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig
from harness.records import Sample
from harness.stages.plan import Plan, describe_model, train_manifest
from harness.store import unit_key
from harness.tasks import TaskSpec


def _generate_samples(engine, fmt, system: str | None, items: list[Sample], name: str, task: TaskSpec,
                      cfg: HarnessConfig, update: Callable) -> list[Sample]:
    gen = cfg.generation
    # system prompt: the item's own (a 'messages' task), else the task's, else the model's
    default_system = task.system_prompt or system
    prompts = [fmt.render_messages(s.meta["messages"], system=default_system) if s.meta.get("messages")
               else fmt.render(s.instruction, s.input, system=default_system) for s in items]
    outs = engine.generate(
        prompts,
        fmt=fmt,
        max_new_tokens=task.generation.max_new_tokens or gen.max_new_tokens,
        temperature=task.generation.temperature if task.generation.temperature is not None else gen.temperature,
        top_p=gen.top_p,
        stop=list(gen.stop) + list(task.generation.stop),
        seed=cfg.seed,
        progress=update,
    )
    samples = []
    for s, prompt, g in zip(items, prompts, outs):
        samples.append(Sample(**{**s.to_dict(), "model": name, "prompt": prompt, "response": g.text,
                                 "n_tokens": g.n_tokens, "truncated": g.truncated,
                                 "meta": {**s.meta, "raw": g.raw} if g.raw != g.text else dict(s.meta)}))
    if "perplexity" in task.metrics:
        nlls = engine.token_nll(prompts, [s.reference for s in items])
        for s, nll in zip(samples, nlls):
            s.metrics["nll"] = nll.nll_sum
            s.metrics["nll_tokens"] = nll.n_tokens
            s.metrics["nll_bytes"] = nll.n_bytes
    return samples


def _score_per_sample(samples: list[Sample], task: TaskSpec) -> None:
    """Per-sample metric values into ``Sample.metrics``; corpus scores (BLEU, chrF, perplexity),
    intervals and paired tests are the score stage's."""
    from harness.metrics import score_per_sample

    if not task.metrics:
        return
    per_sample = score_per_sample(task.metrics, [s.response for s in samples], [s.reference for s in samples],
                                  [s.lang for s in samples], task.metric_options,
                                  n_tokens=[s.n_tokens if s.prompt else None for s in samples])
    for metric, values in per_sample.items():
        for s, v in zip(samples, values):
            s.metrics[metric] = v


def execute(plan: Plan, rundir, progress, model_info: dict[str, Any]) -> None:
    """One unit per model x task not already done: generate (or read the responses file), score
    per sample, write ``samples/<model>/<task>.jsonl`` and the unit marker at once."""
    cfg = plan.config
    for name in plan.models:
        spec = cfg.models[name]
        if spec.responses:
            model_info[name] = {"kind": "responses", "chain": [f"{name} (responses: {spec.responses})"],
                                "template": None, "template_hash": None}
        for task in plan.tasks:
            key = unit_key("generate", name, describe_model(plan, name), task.content_hash(), cfg.generation,
                           cfg.limit, cfg.seed, task.metrics, task.metric_options)
            if rundir.unit_done(key):
                continue
            t0 = time.perf_counter()
            items = plan.items[task.name]
            if spec.responses:
                samples = plan.responses[(name, task.name)]
            else:
                pool = plan.pool()
                engine = pool.engine(name)
                fmt = pool.format(name, task.prompt_format, Path(task.source).parent if task.source else None)
                model_info[name] = {**pool.describe(name), "template": fmt.name,
                                    "template_hash": fmt.template_hash,
                                    "train_manifest": train_manifest(plan, name)}
                with progress.bar(f"{name} · {task.name}", len(items)) as update:
                    samples = _generate_samples(engine, fmt, pool.system_prompt(name), items, name, task,
                                                cfg, update)
            _score_per_sample(samples, task)
            rundir.write_samples(name, task.name, samples)
            rundir.mark_unit_done(key, {"unit": f"generate {name} {task.name}",
                                        "seconds": round(time.perf_counter() - t0, 3)})
            save_models(rundir, model_info)


def save_models(rundir, model_info: dict[str, Any]) -> None:
    info = rundir.run_info()
    info["models"] = {**info.get("models", {}), **model_info}
    rundir.write_json("run.json", info)


