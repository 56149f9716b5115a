"""The metrics stage: per-sample metric values into every generated ``samples/<model>/<task>.jsonl``.

It runs after the other stages, once the run's models are released, so a language model and
the metric encoders (BERTScore's, the Korean ROUGE tokenizer's) are never in memory together;
the encoders are freed when it ends. One unit per model x task, keyed by its generate unit (so
by the task's metrics and their options too): a resumed run scores only what is not scored yet.
Corpus scores (BLEU, chrF, perplexity), intervals and paired tests are the score stage's.
"""

from __future__ import annotations

import time

from harness.records import Sample
from harness.stages import generate
from harness.stages.plan import Plan
from harness.store import unit_key
from harness.tasks import TaskSpec


def execute(plan: Plan, rundir, progress) -> None:
    """Score every generated model x task not scored yet, then free the metric encoders."""
    todo = []
    for name in plan.models:
        for task in plan.tasks:
            key = unit_key("metrics", generate.unit_key_for(plan, name, task))
            if task.metrics and not rundir.unit_done(key) and rundir.has_samples(name, task.name):
                todo.append((name, task, key))
    if not todo:
        return
    models = ", ".join(dict.fromkeys(name for name, _, _ in todo))
    tasks = ", ".join(dict.fromkeys(task.name for _, task, _ in todo))
    try:
        with progress.bar(f"metrics {models} · {tasks} (units)", len(todo)) as update:
            for done, (name, task, key) in enumerate(todo):
                t0 = time.perf_counter()
                samples = rundir.samples(name, task.name)
                score(samples, task)
                rundir.write_samples(name, task.name, samples)
                rundir.mark_unit_done(key, {"unit": f"metrics {name} {task.name}",
                                            "seconds": round(time.perf_counter() - t0, 3)})
                update(done + 1)
    finally:
        release_encoders()


def score(samples: list[Sample], task: TaskSpec) -> None:
    """Per-sample metric values into ``Sample.metrics`` (the perplexity fields stay as stored)."""
    from harness.metrics import score_per_sample

    per_sample = score_per_sample(task.metrics, [s.response for s in samples], [s.reference for s in samples],
                                  [s.lang for s in samples], task.metric_options,
                                  n_tokens=[s.n_tokens if s.prompt else None for s in samples])
    for metric, values in per_sample.items():
        for s, v in zip(samples, values):
            s.metrics[metric] = v


def release_encoders() -> None:
    """Free the BERTScore encoders and the Korean tokenizer (a later run loads them again)."""
    import sys

    from harness.env import release_memory

    semantic = sys.modules.get("harness.metrics.semantic")
    if semantic is not None:
        semantic.clear_cache()
    lexical = sys.modules.get("harness.metrics.lexical")
    if lexical is not None:
        lexical.release_kiwi()
    release_memory()
