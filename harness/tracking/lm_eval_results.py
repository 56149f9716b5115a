"""lm-eval-style results files: ``results_<model>.json`` beside scores.json, one per evaluated model
(lm-eval writes one results file per model), in lm-eval 0.4's shape so tools that read lm-eval
output read harness runs too::

    {"results": {"<task>": {"alias": "<task>", "<metric>,none": v, "<metric>_stderr,none": se}},
     "groups": {"all": {...}}, "group_subtasks": {"all": [...]}, "versions": {...}, "n-shot": {...},
     "higher_is_better": {...}, "n-samples": {...}, "config": {...}, "model_name": ..., "date": ...}

Benchmarks copy lm-eval's own results entry (``acc,none``, ``acc_stderr,none``, ...). Harness tasks
map each aggregate to ``<metric>,none``; its ``<metric>_stderr,none`` is the stored standard error
(sample sd / sqrt(n), lm-eval's definition for means), else the 95% interval's half-width / 1.96
(corpus BLEU/chrF, perplexity), else "N/A". The pooled ``all`` group goes under ``groups``; the
judge's pointwise scores are a task named ``judge``; entries of a pair (``sft_vs_base`` win rates)
belong to no one model and are left out.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

Z95 = 1.959963984540054


def stderr_of(mv: dict[str, Any]) -> float | str:
    se = mv.get("stderr")
    if isinstance(se, (int, float)) and math.isfinite(se):
        return float(se)
    ci = mv.get("ci")
    if ci and len(ci) == 2 and all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
        return (float(ci[1]) - float(ci[0])) / (2 * Z95)
    return "N/A"


def _task_entry(name: str, metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bool], int]:
    entry: dict[str, Any] = {"alias": name}
    hib: dict[str, bool] = {}
    n = 0
    for metric, mv in metrics.items():
        if not isinstance(mv, dict) or mv.get("value") is None:
            continue
        entry[f"{metric},none"] = float(mv["value"])
        entry[f"{metric}_stderr,none"] = stderr_of(mv)
        hib[metric] = bool(mv.get("higher_is_better", True))
        n = max(n, int(mv.get("n") or 0))
    return entry, hib, n


def _timestamp(created: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(created)).timestamp()
    except ValueError:
        return None


def lm_eval_results(scores: dict[str, Any], config: dict[str, Any], info: dict[str, Any], model: str,
                    summaries: dict[str, Any] | None = None) -> dict[str, Any]:
    """The lm-eval-shaped results of ``model``; ``summaries``: ``{benchmark: stored lm-eval summary}``
    (benchmarks/<model>/<bench>.summary.json) whose raw entries are copied as lm-eval wrote them."""
    summaries = summaries or {}
    out: dict[str, Any] = {"results": {}, "groups": {}, "group_subtasks": {}, "versions": {}, "n-shot": {},
                           "higher_is_better": {}, "n-samples": {}}
    lm_eval_version = None
    for name, g in (scores.get("groups") or {}).items():
        if not isinstance(g, dict) or model not in (g.get("models") or {}):
            continue
        metrics = g["models"][model] or {}
        entry, hib, n = _task_entry(name, metrics)
        if len(entry) == 1:
            continue
        ginfo = g.get("info") or {}
        if g.get("kind") == "benchmark":
            raw = (summaries.get(name) or {}).get("lm_eval_raw") or {}
            if any("," in k for k in raw):
                entry = {"alias": raw.get("alias", name), **{k: v for k, v in raw.items() if k != "alias"}}
            lm_eval_version = lm_eval_version or ginfo.get("lm_eval_version")
            out["n-shot"][name] = int(ginfo.get("num_fewshot") or 0)
            out["versions"][name] = "N/A"
            n = int((ginfo.get("n") or {}).get(model) or n)
        else:
            out["n-shot"][name] = 0
            out["versions"][name] = "harness"
        out["higher_is_better"][name] = hib
        out["n-samples"][name] = {"original": n, "effective": n}
        if name == "all" and ginfo.get("tasks"):
            out["groups"][name] = entry
            out["group_subtasks"][name] = list(ginfo["tasks"])
        else:
            out["results"][name] = entry
    models = config.get("models") if isinstance(config.get("models"), dict) else {}
    env = info.get("env") or {}
    out["config"] = {"model": "harness", "model_args": models.get(model) or {}, "model_name": model,
                     "limit": config.get("limit"), "bootstrap_iters": config.get("bootstrap_resamples"),
                     "random_seed": config.get("seed"), "gen_kwargs": config.get("generation") or {}}
    out.update({"model_name": model, "model_name_sanitized": model, "git_hash": env.get("git_commit"),
                "date": _timestamp(info.get("created")), "lm_eval_version": lm_eval_version,
                "harness_version": (env.get("packages") or {}).get("harness"),
                "harness_run_id": scores.get("run_id") or info.get("run_id"),
                "config_hash": scores.get("config_hash") or info.get("config_hash")})
    return out


def write_lm_eval_results(rundir, scores: dict[str, Any]) -> list[Path]:
    """results_<model>.json for every model of ``scores`` (a run's scores.json), beside it."""
    config, info = rundir.config(), rundir.run_info()
    written = []
    for model in scores.get("models") or []:
        summaries = {}
        for m, bench, _ in rundir.benchmark_files():
            if m == model:
                try:
                    summaries[bench] = rundir.benchmark_summary(model, bench)
                except HarnessError:  # an older run without the summary file: mapped from scores.json
                    summaries[bench] = None
        data = lm_eval_results(scores, config, info, model, summaries)
        if data["results"] or data["groups"]:
            written.append(rundir.write_json(f"results_{model}.json", data))
    return written
