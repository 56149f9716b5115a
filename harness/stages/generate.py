"""The generate stage: one unit per model x task -> ``samples/<model>/<task>.jsonl``.

Prompts are rendered with the format the model pool decides, answers come from the model's
Engine (or from a responses file made elsewhere), and each finished unit is written and marked
done (resume skips it). Per-sample metrics come later (stages/metrics.py), once the models are
released, so an LM and the metric encoders are never in memory together. A unit runs as shards of a
fixed size (``cluster.shard_size``, 64 by default), here or on the run's workers; a finished
shard is written at once (``shards/`` of the run directory), so an interrupted unit resumes
where it stopped, on any number of workers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cluster import Call, FormatRef, chunks
from harness.config import HarnessConfig
from harness.records import Sample
from harness.stages.plan import Plan, describe_model, train_manifest
from harness.store import unit_key
from harness.tasks import TaskSpec


def _prompts(fmt, system: str | None, items: list[Sample], task: TaskSpec) -> list[str]:
    # system prompt: the item's own (a 'messages' task), else the task's, else the model's
    default_system = task.system_prompt or system
    return [fmt.render_messages(s.meta["messages"], system=default_system) if s.meta.get("messages")
            else fmt.render(s.instruction, s.input, system=default_system) for s in items]


def _shard_call(name: str, task: TaskSpec, cfg: HarnessConfig, prompts: list[str], references: list[str]) -> Call:
    """One shard's work: its answers, and the references' NLL when the task scores perplexity."""
    gen = cfg.generation
    kwargs: dict[str, Any] = {
        "fmt": FormatRef(task.prompt_format, str(Path(task.source).parent) if task.source else None),
        "max_new_tokens": task.generation.max_new_tokens or gen.max_new_tokens,
        "temperature": task.generation.temperature if task.generation.temperature is not None else gen.temperature,
        "top_p": gen.top_p, "stop": list(gen.stop) + list(task.generation.stop), "seed": cfg.seed}
    if "perplexity" in task.metrics:
        kwargs["nll_targets"] = references
    return Call(name, "generate_scored", (prompts,), kwargs, label=f"{name} · {task.name}")


def _shard_rows(result: tuple[list, list | None]) -> list[dict[str, Any]]:
    """A shard's result as the rows of its file (what the samples are assembled from)."""
    gens, nlls = result
    rows = [{"text": g.text, "raw": g.raw, "n_tokens": g.n_tokens, "truncated": g.truncated, "finish": g.finish}
            for g in gens]
    for row, nll in zip(rows, nlls or []):
        row["nll"] = [nll.nll_sum, nll.n_tokens, nll.n_bytes]
    return rows


def _assemble(items: list[Sample], prompts: list[str], rows: list[dict[str, Any]], name: str) -> list[Sample]:
    samples = []
    for s, prompt, g in zip(items, prompts, rows):
        sample = Sample(**{**s.to_dict(), "model": name, "prompt": prompt, "response": g["text"],
                           "n_tokens": g["n_tokens"], "truncated": g["truncated"],
                           "meta": {**s.meta, "raw": g["raw"]} if g["raw"] != g["text"] else dict(s.meta)})
        if "nll" in g:
            sample.metrics["nll"], sample.metrics["nll_tokens"], sample.metrics["nll_bytes"] = g["nll"]
        samples.append(sample)
    return samples


@dataclass
class _Unit:
    """One model x task being generated shard by shard."""

    name: str
    task: TaskSpec
    key: str
    items: list[Sample]
    prompts: list[str]
    parts: list[list[dict[str, Any]] | None]
    t0: float = field(default_factory=time.perf_counter)


def unit_key_for(plan: Plan, name: str, task: TaskSpec) -> str:
    """The unit key of ``name`` on ``task``: everything its answers (and their per-sample metrics,
    stages/metrics.py) depend on."""
    cfg = plan.config
    return unit_key("generate", name, describe_model(plan, name), task.content_hash(), cfg.generation,
                    cfg.limit, cfg.seed, task.metrics, task.metric_options)


def execute(plan: Plan, rundir, progress, model_info: dict[str, Any]) -> None:
    """One unit per model x task not already done. A unit's items go out in shards of
    ``plan.shard_size`` (on the run's workers, or here one after another: the same shards either
    way, so the same numbers); each finished shard is written at once, so a resumed run keeps it
    whatever the worker count; when a unit's last shard is in, its samples are written as
    ``samples/<model>/<task>.jsonl`` with the unit marker."""
    cfg = plan.config
    size = plan.shard_size
    calls: list[Call] = []
    owner: list[tuple[_Unit, int]] = []
    for name in plan.models:
        spec = cfg.models[name]
        if spec.responses:
            model_info[name] = {"kind": "responses", "chain": [f"{name} (responses: {spec.responses})"],
                                "template": None, "template_hash": None}
        for task in plan.tasks:
            key = unit_key_for(plan, name, task)
            if rundir.unit_done(key):
                continue
            items = plan.items[task.name]
            if spec.responses:
                _finish(rundir, _Unit(name, task, key, items, [], []), plan.responses[(name, task.name)], model_info)
                continue
            pool = plan.pool()
            load_engine(pool, name, progress)
            fmt = pool.format(name, task.prompt_format, Path(task.source).parent if task.source else None)
            model_info[name] = {**pool.describe(name), "template": fmt.name, "template_hash": fmt.template_hash,
                                "train_manifest": train_manifest(plan, name)}
            prompts = _prompts(fmt, pool.system_prompt(name), items, task)
            parts = chunks(len(items), size)
            unit = _Unit(name, task, key, items, prompts, [None] * len(parts))
            for i, (a, b) in enumerate(parts):
                if rundir.has_shard(key, size, i):
                    unit.parts[i] = rundir.read_shard(key, size, i)
                else:
                    calls.append(_shard_call(name, task, cfg, prompts[a:b], [s.reference for s in items[a:b]]))
                    owner.append((unit, i))
            if all(p is not None for p in unit.parts):
                _finish(rundir, unit, None, model_info)

    def on_done(j: int, result: Any) -> None:
        unit, i = owner[j]
        rows = _shard_rows(result)
        rundir.write_shard(unit.key, size, i, rows)
        unit.parts[i] = rows
        if all(p is not None for p in unit.parts):
            _finish(rundir, unit, None, model_info)

    if calls:
        models = list(dict.fromkeys(u.name for u, _ in owner))
        tasks = list(dict.fromkeys(u.task.name for u, _ in owner))
        plan.pool().executor.map(calls, on_done=on_done, description=f"generate {', '.join(models)} · {', '.join(tasks)}")


def _finish(rundir, unit: _Unit, samples: list[Sample] | None, model_info: dict[str, Any]) -> None:
    """Write a unit's samples and its marker (then drop its shards)."""
    if samples is None:
        samples = _assemble(unit.items, unit.prompts, [r for part in unit.parts for r in part], unit.name)
    rundir.write_samples(unit.name, unit.task.name, samples)
    rundir.mark_unit_done(unit.key, {"unit": f"generate {unit.name} {unit.task.name}",
                                     "seconds": round(time.perf_counter() - unit.t0, 3)})
    rundir.drop_shards(unit.key)
    save_models(rundir, model_info)


def load_engine(pool, name: str, progress) -> Any:
    """``pool.engine(name)``, saying so on the progress display when it loads a model here (a
    log then shows why the next minute passes)."""
    is_loaded = getattr(pool, "is_loaded", None)
    here = not getattr(getattr(pool, "executor", None), "remote", False)
    served = getattr(getattr(pool, "resolved", {}).get(name), "kind", "") == "served"
    if progress is not None and is_loaded is not None and here and not served and not is_loaded(name):
        t0 = time.perf_counter()
        progress.log(f"load {name} ...")
        engine = pool.engine(name)
        progress.log(f"load {name}: done ({time.perf_counter() - t0:.1f} s)")
        return engine
    return pool.engine(name)


def save_models(rundir, model_info: dict[str, Any]) -> None:
    info = rundir.run_info()
    info["models"] = {**info.get("models", {}), **model_info}
    rundir.write_json("run.json", info)


