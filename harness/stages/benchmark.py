"""The benchmark stage: lm-eval benchmarks per model -> ``benchmarks/<model>/<bench>.jsonl``."""

from __future__ import annotations

import time
from typing import Any

from harness.progress import Progress
from harness.stages.generate import load_engine
from harness.stages.plan import Plan, describe_model
from harness.store import unit_key


def execute(plan: Plan, rundir, progress: Progress, model_info: dict[str, Any]) -> None:
    """Every configured benchmark on every evaluated checkpoint (answers files have no model)."""
    cfg = plan.config
    for name in plan.models:
        if cfg.benchmarks and not cfg.models[name].responses:
            _benchmark_model(plan, plan.pool(), name, rundir, progress)
            model_info.setdefault(name, plan.pool().describe(name))


def _benchmark_model(plan: Plan, pool, name: str, rundir, progress: Progress) -> None:
    """lm-eval benchmarks on ``name``'s Engine (it activates the model's adapters itself).
    Benchmarks not yet done run in one lm-eval call (as ``lm_eval --tasks a,b`` would); each is
    its own unit."""
    from harness.benchmarks import run_benchmarks

    cfg = plan.config
    todo = []
    for bench in cfg.benchmarks:
        key = unit_key("benchmark", name, describe_model(plan, name), bench.model_dump(mode="json"), cfg.seed)
        if not rundir.unit_done(key):
            todo.append((bench, key))
    if not todo:
        return
    t0 = time.perf_counter()
    engine = load_engine(pool, name, progress)
    chat = pool.format(name, "chat") if any(b.apply_chat_template for b, _ in todo) else None
    # total: lm-eval's requests (e.g. 4 per multiple-choice question), known once it hands them over
    with progress.bar(f"benchmark {name} · {', '.join(b.name for b, _ in todo)} (requests)", None) as update:
        results = run_benchmarks(engine, [b for b, _ in todo], model_name=name, chat_format=chat, seed=cfg.seed,
                                 n_resamples=cfg.bootstrap_resamples, progress=update)
    seconds = round(time.perf_counter() - t0, 3)
    for bench, key in todo:
        result = results[bench.name]
        rundir.write_benchmark(name, bench.name, result.samples, result.to_dict())
        rundir.mark_unit_done(key, {"unit": f"benchmark {name} {bench.name}", "seconds": seconds / len(todo)})
