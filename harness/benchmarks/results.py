"""Benchmark results: ``BenchmarkResult`` (one model on one benchmark), the per-question records
made from lm-eval's logged samples, and ``benchmark_group`` (the scores.json group with paired
McNemar tests). Pure: no model, no lm-eval import."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.records import MetricValue

_QUESTION_CHARS = 200


@dataclass
class BenchmarkResult:
    """One model on one benchmark (an lm-eval task or group)."""

    name: str
    model: str
    metrics: dict[str, MetricValue]  # acc, acc_norm: lm-eval value + stderr, our bootstrap CI
    samples: list[dict]  # per-question records (see ``sample_record``)
    n: int
    num_fewshot: int
    limit: int | None
    task_hash: str
    lm_eval_version: str
    apply_chat_template: bool = False
    subtasks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lm_eval_raw: dict[str, Any] = field(default_factory=dict)  # lm-eval's results entry as reported

    def per_sample(self, metric: str = "acc") -> dict[str, float | None]:
        """``{"<subtask>/<doc_id>": 0/1}`` for pairing samples across models."""
        return {f"{s['task']}/{s['doc_id']}": s.get(metric) for s in self.samples}

    def to_dict(self, with_samples: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = {k: v.to_dict() for k, v in self.metrics.items()}
        if not with_samples:
            d.pop("samples")
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], samples: list[dict] | None = None) -> BenchmarkResult:
        d = dict(data)
        d["metrics"] = {k: MetricValue.from_dict(v) for k, v in d.get("metrics", {}).items()}
        d["samples"] = samples if samples is not None else d.get("samples", [])
        return cls(**d)


def shorten(text: Any, n: int = _QUESTION_CHARS) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def sample_record(task: str, s: dict) -> dict:
    """lm-eval's logged sample -> our per-question record."""
    doc = s.get("doc") or {}
    args = s.get("arguments") or []
    # multiple_choice: one (context, continuation) request per choice; resps hold (ll, is_greedy)
    lls: list[float] = []
    response = None
    for r in s.get("filtered_resps") or s.get("resps") or []:
        v = r[0] if isinstance(r, (list, tuple)) and r else r
        v = v[0] if isinstance(v, (list, tuple)) and v else v
        if isinstance(v, str):  # generate_until: the (filtered) model output
            response = v
            break
        try:
            lls.append(float(v))
        except (TypeError, ValueError):
            break
    choices = [a[1] for a in args if isinstance(a, (list, tuple)) and len(a) > 1 and isinstance(a[1], str)]
    question = next((doc[k] for k in ("question", "query", "ctx", "sentence", "text", "premise") if k in doc), None)
    if question is None and args:
        question = args[0][0] if isinstance(args[0], (list, tuple)) else args[0]
    pred = max(range(len(lls)), key=lambda i: lls[i]) if lls else None
    target = s.get("target")
    gold: Any = target
    if lls:  # multiple choice: the index of the right choice
        try:
            gold = int(target)
        except (TypeError, ValueError):
            pass
    rec = {
        "task": task,
        "doc_id": s.get("doc_id"),
        "question": shorten(question or ""),
        "choices": [c.strip() for c in choices],
        "loglikelihoods": [None if math.isnan(x) else round(x, 6) for x in lls],
        "pred": pred,
        "gold": gold,
    }
    if response is not None:
        rec["response"] = shorten(response, 500)
    options = doc.get("choices") if isinstance(doc, dict) else None
    if (isinstance(options, list) and len(options) == len(choices)
            and [str(o).strip() for o in options] != rec["choices"]):
        rec["options"] = [shorten(o, 120) for o in options]  # e.g. MMLU: the texts behind A-D
    for m in ("acc", "acc_norm", "exact_match"):
        if m in s and s[m] is not None:
            rec[m] = float(s[m])
    return rec


def leaf_tasks(results: dict, name: str) -> list[str]:
    samples = results.get("samples") or {}
    if name in samples:
        return [name]
    leaves = []
    group_subtasks = results.get("group_subtasks") or {}

    def walk(n: str) -> None:
        for sub in group_subtasks.get(n, []):
            if sub in samples:
                leaves.append(sub)
            else:
                walk(sub)

    walk(name)
    return leaves or sorted(samples)


def _hash_config(configs: dict, leaves: Sequence[str], samples: list[dict]) -> str:
    h = hashlib.sha256()
    for t in sorted(leaves):
        h.update(json.dumps(configs.get(t, {}), sort_keys=True, default=str, ensure_ascii=False).encode())
    for s in samples:
        h.update(json.dumps([s["task"], s["doc_id"], s["choices"], s["gold"]], ensure_ascii=False,
                            default=str).encode())
    return h.hexdigest()[:16]


def to_result(res: dict, spec, model_name: str, mini_hash: str | None, version: str,
              seconds: float, seed: int, n_resamples: int) -> BenchmarkResult:
    """lm-eval's results for ``spec`` -> a ``BenchmarkResult``; ``mini_hash`` is an offline mini's
    task hash (else one is made from the task configs and the questions)."""
    from harness.metrics.stats import aggregate

    name = spec.name
    leaves = leaf_tasks(res, name)
    samples: list[dict] = []
    for t in leaves:
        for s in sorted(res["samples"].get(t, []), key=lambda s: s["doc_id"]):
            samples.append(sample_record(t, s))
    entry = (res.get("results") or {}).get(name) or (res.get("groups") or {}).get(name) or {}
    metrics: dict[str, MetricValue] = {}
    for m in ("acc", "acc_norm", "exact_match"):
        per = [s.get(m) for s in samples]
        if not samples or all(v is None for v in per):
            continue
        mv = aggregate(per, higher_is_better=True, seed=seed, n_resamples=n_resamples, binary=True)
        key = next((k for k in entry if k.split(",")[0] == m), None)
        if key is not None and isinstance(entry[key], (int, float)):
            mv.value = float(entry[key])
            skey = key.replace(m, f"{m}_stderr", 1)
            se = entry.get(skey)
            mv.stderr = float(se) if isinstance(se, (int, float)) else mv.stderr
        metrics[m] = mv
    raw = {k: v for k, v in entry.items() if isinstance(v, (int, float, str))}
    task_hash = mini_hash if mini_hash is not None else _hash_config(res.get("configs") or {}, leaves, samples)
    return BenchmarkResult(
        name=name, model=model_name, metrics=metrics, samples=samples, n=len(samples),
        num_fewshot=spec.num_fewshot, limit=spec.limit, task_hash=task_hash, lm_eval_version=version,
        apply_chat_template=bool(spec.apply_chat_template), subtasks=leaves if leaves != [name] else [],
        seconds=round(seconds, 3), lm_eval_raw=raw,
    )


def benchmark_group(results_by_model: dict[str, BenchmarkResult], models_order: Sequence[str] | None = None,
                    seed: int = 0, n_resamples: int = 1000) -> dict[str, Any]:
    """The scores.json group of one benchmark: metrics per model, paired McNemar tests on
    per-sample correctness (samples both models have) between every pair, in order."""
    from harness.metrics.stats import compare_models, model_pairs

    order = [m for m in (models_order or list(results_by_model)) if m in results_by_model]
    if not order:
        raise HarnessError("no benchmark results to group", where="benchmarks")
    first = results_by_model[order[0]]
    metrics_all = sorted({k for r in results_by_model.values() for k in r.metrics})
    paired = []
    for metric in metrics_all:
        per_model_map = {m: results_by_model[m].per_sample(metric) for m in order
                         if metric in results_by_model[m].metrics}
        for a, b in model_pairs(per_model_map):  # later a vs earlier b, on the questions both have
            keys = sorted(set(per_model_map[a]) & set(per_model_map[b]))
            pair = {b: [per_model_map[b][k] for k in keys], a: [per_model_map[a][k] for k in keys]}
            paired += [t.to_dict() for t in compare_models(pair, metric, binary=True,
                                                           n_resamples=n_resamples, seed=seed)]
    hashes = {m: results_by_model[m].task_hash for m in order}
    info = {
        "lm_eval_version": first.lm_eval_version,
        "task_hash": first.task_hash,
        "n": {m: results_by_model[m].n for m in order},
        "num_fewshot": first.num_fewshot,
        "limit": first.limit,
        "apply_chat_template": first.apply_chat_template,
    }
    if first.subtasks:
        info["subtasks"] = len(first.subtasks)
    if len(set(hashes.values())) > 1:
        info["task_hash_by_model"] = hashes  # models saw different questions: pairs use the shared ones
    return {
        "kind": "benchmark",
        "models": {m: {k: v.to_dict() for k, v in results_by_model[m].metrics.items()} for m in order},
        "paired": paired,
        "info": info,
    }
