"""The format-neutral view of one run that report.md and report.html render: summary and
per-group tables, warnings, training logs, pairwise matrices and the sample items.

Everything is read from the run directory through ``RunDir`` (no model is loaded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records import Coverage
from harness.report.arena import ArenaSection, arena_section
from harness.report.layout import DPO_ACCURACY, DPO_REWARDS, flatten, key_metrics, log_curves, row_families
from harness.report.rows import Row, comparisons, metric_rows
from harness.report.verdict import Verdict, verdict
from harness.store import RunDir


@dataclass
class Section:
    """The table of one task or judge group, with the group's ``info``."""

    name: str
    kind: str
    rows: list[Row]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainInfo:
    """What a model's training manifest says: hyperparameters and the loss curves."""

    model: str
    kind: str
    base: str
    hyperparameters: dict[str, Any]
    loss: list[tuple[float, float]]
    eval_loss: list[tuple[float, float]]
    wall_time_s: float | None
    device: str | None
    extra: dict[str, Any]
    rewards: list[tuple[str, list[tuple[float, float]]]] = field(default_factory=list)  # trl's DPO rewards/*
    reward_acc: list[tuple[str, list[tuple[float, float]]]] = field(default_factory=list)  # rewards/accuracies

    @property
    def hyper_rows(self) -> list[tuple[str, str]]:
        return flatten(self.hyperparameters)

    @property
    def detail_rows(self) -> list[tuple[str, str]]:
        """The manifest's other fields as readable key/value rows (nested dicts flattened)."""
        return flatten(self.extra)


@dataclass
class ReportView:
    """Everything report.md and report.html show about one run."""

    run_dir: Path
    run_id: str
    created: str
    config_hash: str
    models: list[str]
    model_info: dict[str, dict[str, Any]]
    env: dict[str, Any]
    judge_info: dict[str, Any]
    timings: dict[str, float]
    wall_time_s: float | None
    warnings: list[str]
    summary: list[Row]
    tasks: list[Section]
    benchmarks: list[Row]
    benchmark_info: dict[str, dict]
    judge: list[Row]
    judge_groups: list[Section]
    pairwise: list[dict[str, Any]]
    training: list[TrainInfo]
    items: list[dict[str, Any]]
    sample_metrics: list[str]
    comparisons: list[tuple[str, str]]
    arena: ArenaSection | None = None  # human votes of `harness arena` (report/arena.py)
    judge_card: dict[str, Any] | None = None  # scores.json judge_reliability (harness/report/judge_card.py)
    verdict: Verdict | None = None  # the answer at a glance (report/verdict.py)
    key_metrics: dict[str, list[str]] = field(default_factory=dict)  # task -> what its sample cards show
    directions: dict[str, bool | None] = field(default_factory=dict)  # metric -> higher is better (None: neither)
    row_families: dict[str, str] = field(default_factory=dict)  # group -> family of its summary rows (layout.fold)
    tasks_in_summary: bool = False  # no pooled group: the summary already has every task's rows


def models_info(info: dict) -> dict[str, dict]:
    """run.json's ``models`` (a mapping, or a list of records with ``name``) as {name: record}."""
    raw = info.get("models") or {}
    if isinstance(raw, list):
        return {str(r.get("name")): r for r in raw if isinstance(r, dict) and r.get("name")}
    return {str(k): v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}


def is_small_local_judge(judge: dict, groups: dict) -> str | None:
    """A reason string when the judge is a small local model, else None."""
    backend = str((judge or {}).get("backend") or "")
    if backend.startswith("hf:"):
        return backend
    for g in groups.values():
        if g.get("kind") != "judge":
            continue
        gi = g.get("info") or {}
        if gi.get("small_local") or gi.get("small") or gi.get("local"):
            return str(gi.get("backend") or gi.get("judge_model") or "local judge")
        if str(gi.get("backend") or "").startswith("hf:"):
            return str(gi["backend"])
    return None


def engine_label(mi: dict) -> str:
    """How a model was served, for the model table: "vllm 0.32.0 (lora-combined)", "openai: llama3"."""
    eng = mi.get("engine") if isinstance(mi.get("engine"), dict) else {}
    backend = eng.get("backend") or mi.get("backend") or ("responses" if mi.get("kind") == "responses" else "hf")
    label = " ".join(str(x) for x in (backend, eng.get("version")) if x)
    if eng.get("path"):
        label += f" ({eng['path']})"
    if mi.get("kind") == "served":
        label += f": {mi.get('model')} @ {mi.get('base_url') or mi.get('host')}"
    return label


def parity_label(mi: dict) -> str:
    """The parity check's figures in one cell: "8/8 greedy, |Δ log p| ≤ 3e-06/token", or "–"."""
    p = mi.get("parity")
    if not isinstance(p, dict) or not p.get("items"):
        return "–"
    text = (f"{p.get('greedy_agree')}/{p.get('items')} greedy, "
            f"|Δ log p| ≤ {float(p.get('logprob_max_abs_diff_per_token') or 0):.1g}/token")
    return text if p.get("ok", True) else f"{text} ⚠"


def build_warnings(models: list[str], model_info: dict, judge: dict, groups: dict) -> list[str]:
    warnings = []
    for m in models:
        p = (model_info.get(m) or {}).get("parity")
        if isinstance(p, dict) and p.get("problems"):
            warnings.append(f"{m}: the backend disagrees with transformers on the first {p.get('items')} items of "
                            f"{p.get('task')}: " + "; ".join(str(x) for x in p["problems"])
                            + ". Check the backend's dtype and settings before trusting its scores.")
    hashes = {}
    for m in models:
        h = (model_info.get(m) or {}).get("template_hash")
        if h:
            hashes.setdefault(h, []).append(f"{m} ({(model_info.get(m) or {}).get('template') or '?'})")
    if len(hashes) > 1:
        warnings.append(
            "Models used different prompt templates: "
            + "; ".join(f"{', '.join(ms)} = {h}" for h, ms in hashes.items())
            + ". Score differences may come from the prompt format, not the weights."
        )
    small = is_small_local_judge(judge, groups)
    if small:
        warnings.append(
            f"The judge is a small local model ({small}). Its scores are noisy and biased: "
            "treat judge results as indicative only and confirm with a stronger judge."
        )
    return warnings


def _train_info(model: str, man: dict) -> TrainInfo:
    loss, eval_loss = [], []
    for i, rec in enumerate(man.get("log") or []):
        if not isinstance(rec, dict):
            continue
        step = rec.get("step", i + 1)
        if not isinstance(step, (int, float)):
            continue
        if isinstance(rec.get("loss"), (int, float)) and math.isfinite(rec["loss"]):
            loss.append((float(step), float(rec["loss"])))
        if isinstance(rec.get("eval_loss"), (int, float)) and math.isfinite(rec["eval_loss"]):
            eval_loss.append((float(step), float(rec["eval_loss"])))
    known = {"kind", "base", "hyperparameters", "log", "wall_time_s", "device"}
    return TrainInfo(
        model=model, kind=str(man.get("kind") or "?"),
        base=str((man.get("base") or {}).get("ref", "") if isinstance(man.get("base"), dict) else man.get("base") or ""),
        hyperparameters=dict(man.get("hyperparameters") or {}), loss=loss, eval_loss=eval_loss,
        wall_time_s=man.get("wall_time_s"), device=man.get("device"),
        extra={k: v for k, v in man.items() if k not in known},
        rewards=log_curves(man.get("log") or [], DPO_REWARDS), reward_acc=log_curves(man.get("log") or [], DPO_ACCURACY),
    )


def load_items(run: RunDir, models: list[str]) -> tuple[list[dict], list[str]]:
    """One item per (task, sample id): the shared inputs and each model's answer and scores."""
    items: dict[tuple[str, str], dict] = {}
    metric_names: list[str] = []
    for model, task, _ in run.sample_files():
        if model not in models:
            continue
        for s in run.samples(model, task):
            it = items.setdefault((s.task or task, s.id), {
                "task": s.task or task, "id": s.id, "lang": s.lang, "instruction": s.instruction,
                "input": s.input, "reference": s.reference, "answers": {}, "pairwise": []})
            metrics = {k: (v if isinstance(v, (int, float)) and math.isfinite(v) else None)
                       for k, v in (s.metrics or {}).items()}
            for k in metrics:
                if k not in metric_names:
                    metric_names.append(k)
            it["answers"][model] = {"response": s.response, "metrics": metrics, "truncated": bool(s.truncated),
                                    "n_tokens": s.n_tokens, "judge": {}}
    judges: list[str] = []
    for judge, who, task, _ in run.verdict_files():
        for v in run.verdicts(judge, who, task):
            it = items.get((v.task or task, v.id))
            if it is None:
                continue
            if "_vs_" in who:
                it["pairwise"].append({"judge": judge, "pair": who.replace("_vs_", " vs "),
                                       "winner": v.winner, "rationale": v.rationale, "error": v.error})
            elif who in it["answers"]:
                key = f"judge:{judge}"
                if key not in judges:
                    judges.append(key)
                it["answers"][who]["judge"][judge] = {"score": v.score, "rationale": v.rationale, "error": v.error}
                it["answers"][who]["metrics"][key] = v.score
    order = {m: i for i, m in enumerate(models)}
    out = sorted(items.values(), key=lambda it: (it["task"], it["id"]))
    for it in out:
        it["answers"] = dict(sorted(it["answers"].items(), key=lambda kv: order.get(kv[0], 99)))
    return out, metric_names + judges


def top_differences(items: list[dict], metric: str, a: str, b: str, k: int = 5) -> list[tuple[float, dict]]:
    """Items with the largest |b - a| on ``metric`` (both present), largest first."""
    scored = []
    for it in items:
        va = (it["answers"].get(a) or {}).get("metrics", {}).get(metric)
        vb = (it["answers"].get(b) or {}).get("metrics", {}).get(metric)
        if va is not None and vb is not None:
            scored.append((vb - va, it))
    scored.sort(key=lambda t: (-abs(t[0]), t[1]["task"], t[1]["id"]))
    return scored[:k]


def summary_rows(groups: dict[str, dict], models: list[str], cov: Coverage | None) -> list[Row]:
    """The summary table: the pooled ``all`` group (else every task), each preference task's
    accuracy, each benchmark's accuracy and every judge metric."""
    task_groups = [g for g, d in groups.items() if d.get("kind") == "task" and g != "all"]
    bench_groups = [g for g, d in groups.items() if d.get("kind") == "benchmark"]
    judge_groups = [g for g, d in groups.items() if d.get("kind") == "judge"]
    summary: list[Row] = []
    if "all" in groups:
        summary += metric_rows("all", groups["all"], models, coverage=cov)
        for g in task_groups:  # preference tasks are not pooled into `all`: their accuracy on its own
            if (groups[g].get("info") or {}).get("type") == "preference":
                summary += metric_rows(g, groups[g], models, label_prefix=f"{g} · ", metrics=["pref_acc"],
                                       coverage=cov)
    else:
        for g in task_groups:
            summary += metric_rows(g, groups[g], models, label_prefix=f"{g} · ", coverage=cov)
    for g in bench_groups:
        summary += metric_rows(g, groups[g], models, label_prefix=f"{g} · ", metrics=["acc"], coverage=cov)
    for g in judge_groups:
        summary += metric_rows(g, groups[g], models, label_prefix=f"{g} · ", coverage=cov)
    return summary


def build_view(run: RunDir) -> ReportView:
    scores = run.scores()
    info = run.run_info()
    groups: dict[str, dict] = {k: v for k, v in (scores.get("groups") or {}).items() if isinstance(v, dict)}
    models = [str(m) for m in (scores.get("models") or info.get("models_order") or [])]
    if not models:
        for g in groups.values():
            for m in g.get("models") or {}:
                if m not in models:
                    models.append(m)
    if not models:
        raise HarnessError(f"{run.path / 'scores.json'}: no models in the scores", fix="rerun `harness run`")
    model_info = models_info(info)
    judge_info = dict(info.get("judge") or {})
    cov = Coverage.from_dict(scores.get("coverage"))

    task_groups = [g for g, d in groups.items() if d.get("kind") == "task" and g != "all"]
    bench_groups = [g for g, d in groups.items() if d.get("kind") == "benchmark"]
    judge_groups = [g for g, d in groups.items() if d.get("kind") == "judge"]

    summary = summary_rows(groups, models, cov)
    tasks = [Section(g, "task", metric_rows(g, groups[g], models, coverage=cov), dict(groups[g].get("info") or {}))
             for g in task_groups]
    benchmarks = []
    for g in bench_groups:
        benchmarks += metric_rows(g, groups[g], models, label_prefix=f"{g} · ", show_stderr=True, coverage=cov)
    judge_sections = [Section(g, "judge", metric_rows(g, groups[g], models, label_prefix=f"{g} · ", coverage=cov),
                              dict(groups[g].get("info") or {})) for g in judge_groups]
    pairwise = []
    for s in judge_sections:
        if isinstance(s.info.get("matrix"), (dict, list)):
            pairwise.append({"group": s.name, "matrix": normalize_matrix(s.info["matrix"], models),
                             "consistency": s.info.get("consistency"), "length_bias": s.info.get("length_bias"),
                             "judge": s.info.get("judge"), "judge_model": s.info.get("judge_model")})

    training = [_train_info(m, (model_info.get(m) or {})["train_manifest"]) for m in models
                if isinstance((model_info.get(m) or {}).get("train_manifest"), dict)]
    items, sample_metrics = load_items(run, models)
    timings = {str(k): float(v) for k, v in (info.get("timings") or {}).items() if isinstance(v, (int, float))}
    wall = info.get("wall_time_s")
    if not isinstance(wall, (int, float)):
        wall = sum(timings.values()) if timings else None
    return ReportView(
        run_dir=run.path, run_id=str(scores.get("run_id") or info.get("run_id") or run.path.name),
        created=str(info.get("created") or ""), config_hash=str(scores.get("config_hash") or info.get("config_hash") or ""),
        models=models, model_info=model_info, env=dict(info.get("env") or {}), judge_info=judge_info,
        timings=timings, wall_time_s=wall, warnings=build_warnings(models, model_info, judge_info, groups),
        summary=summary, tasks=tasks, benchmarks=benchmarks,
        benchmark_info={g: dict(groups[g].get("info") or {}) for g in bench_groups},
        judge=[r for s in judge_sections for r in s.rows], judge_groups=judge_sections, pairwise=pairwise,
        training=training, items=items, sample_metrics=sample_metrics, comparisons=comparisons(models),
        arena=arena_section(run, models),
        judge_card=scores.get("judge_reliability"),
        verdict=verdict(scores, models), key_metrics=_key_metrics(tasks, items, main_metric_of(summary, sample_metrics)),
        row_families=row_families(groups), tasks_in_summary="all" not in groups, directions=_directions(summary + [r for t in tasks for r in t.rows], sample_metrics),
    )


def main_metric_of(summary: list[Row], sample_metrics: list[str]) -> str | None:
    preferred = [r.metric for r in summary if r.group == "all"] or [r.metric for r in summary]
    return next((m for m in preferred if m in sample_metrics), None)


def _key_metrics(tasks: list[Section], items: list[dict], main: str | None) -> dict[str, list[str]]:
    present: dict[str, list[str]] = {}
    for it in items:
        names = present.setdefault(it["task"], [])
        for ans in it["answers"].values():
            names += [k for k in ans["metrics"] if k not in names]
    out = {}
    for t in tasks:
        if t.name in present:
            out[t.name] = key_metrics(t.rows, present[t.name], main)  # judge scores: a line of their own
    return out


def _directions(rows: list[Row], names: list[str]) -> dict[str, bool | None]:
    out: dict[str, bool | None] = {}
    for r in rows:
        out.setdefault(r.metric, r.higher_is_better)
    return {k: out.get(k, True) for k in names}


def normalize_matrix(raw: Any, models: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """``{row: {col: {win, tie, loss, missing}}}`` from a nested dict or a list of pair records."""
    out: dict[str, dict[str, dict[str, int]]] = {}

    def put(a, b, rec):
        out.setdefault(str(a), {})[str(b)] = {k: int(rec.get(k) or 0) for k in ("win", "tie", "loss", "missing")}

    if isinstance(raw, dict):
        for a, row in raw.items():
            if isinstance(row, dict):
                for b, rec in row.items():
                    if isinstance(rec, dict):
                        put(a, b, rec)
    elif isinstance(raw, list):
        for rec in raw:
            if isinstance(rec, dict) and rec.get("a") and rec.get("b"):
                put(rec["a"], rec["b"], rec)
                mirror = {"win": rec.get("loss"), "tie": rec.get("tie"), "loss": rec.get("win"),
                          "missing": rec.get("missing")}
                out.setdefault(str(rec["b"]), {}).setdefault(str(rec["a"]), {k: int(v or 0) for k, v in mirror.items()})
    return out


def main_metric(view: ReportView) -> str | None:
    """The metric the Markdown sample section and the browser sort by first."""
    preferred = [r.metric for r in view.summary if r.group == "all"] or [r.metric for t in view.tasks for r in t.rows]
    for m in preferred:
        if m in view.sample_metrics:
            return m
    return view.sample_metrics[0] if view.sample_metrics else None
