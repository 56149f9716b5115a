"""``harness compare RUN_A RUN_B``: the same models before (A) and after (B).

For every group and metric both runs scored, each model gets A, B and the change B − A. Where
the runs share sample ids (same task data), the change carries a paired bootstrap over the
matched samples (``harness.metrics.stats.paired_bootstrap``); otherwise it is a plain
difference of means without a test. Reads stored files only, through ``RunDir`` (the
per-sample values are ``RunDir.per_sample_metrics``, keyed like a baseline's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.records import MetricValue, Sample
from harness.report.rows import Cell, Delta, Row, decimals_for, metric_value
from harness.report.view import is_small_local_judge, models_info
from harness.store import RunDir, open_run


@dataclass
class RunSide:
    label: str
    run: RunDir
    run_id: str
    created: str
    config_hash: str
    models: list[str]
    model_info: dict[str, dict]
    judge: dict[str, Any]
    scores: dict[str, Any]


@dataclass
class CompareView:
    a: RunSide
    b: RunSide
    models: list[str]
    only_a: list[str]
    only_b: list[str]
    warnings: list[str]
    notes: list[str]
    per_model: dict[str, list[Row]]
    overview: list[dict[str, Any]]  # {label, higher_is_better, cells: {model: (Row, Delta) | None}}
    changes: dict[str, list[str]]  # model -> resolution changes
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sample_metric: str | None = None


def _side(label: str, run: RunDir) -> RunSide:
    scores = run.scores()
    info = run.run_info()
    models = [str(m) for m in scores.get("models") or info.get("models_order") or []]
    return RunSide(label, run, str(scores.get("run_id") or info.get("run_id") or run.path.name),
                   str(info.get("created") or ""), str(scores.get("config_hash") or info.get("config_hash") or ""),
                   models, models_info(info), dict(info.get("judge") or {}), scores)


class _PerSample:
    """Per-sample values of one run (``RunDir.per_sample_metrics``), read once per (group, model)."""

    def __init__(self, run: RunDir):
        self.run = run
        self._values: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
        self._samples: dict[tuple[str, str], dict[str, Sample]] = {}
        self._files = {(m, t) for m, t, _ in run.sample_files()}

    def values(self, group: str, model: str, metric: str) -> dict[str, float]:
        """``{key: value}`` behind ``model.group.metric``; keys ``<task>/<id>`` (tasks, judge) or question ids."""
        if (group, model) not in self._values:
            self._values[(group, model)] = self.run.per_sample_metrics(group, model)
        return self._values[(group, model)].get(metric, {})

    def sample(self, model: str, task: str, sid: str) -> Sample | None:
        if (model, task) not in self._samples:
            stored = (model, task) in self._files
            self._samples[(model, task)] = {s.id: s for s in self.run.samples(model, task)} if stored else {}
        return self._samples[(model, task)].get(sid)


def _match_order(kind: str):
    """The order matched samples are listed in, which seeds what each bootstrap resample draws:
    ``(task, id)`` pairs as text for task and judge groups, the question id for benchmarks."""
    if kind in ("task", "judge"):
        return lambda key: str(tuple(key.split("/", 1)))
    return str


def _paired(va: dict, vb: dict, kind: str, hib: bool, mva: MetricValue | None, mvb: MetricValue | None,
            model: str) -> Delta:
    keys = sorted(set(va) & set(vb), key=_match_order(kind))
    if len(keys) >= 2:
        from harness.metrics.stats import paired_bootstrap

        res = paired_bootstrap([vb[k] for k in keys], [va[k] for k in keys], n_resamples=1000, seed=0)
        if not isinstance(res, dict):
            res = res.to_dict() if hasattr(res, "to_dict") else dict(vars(res))
        diff, ci, p = res.get("diff"), res.get("ci"), res.get("p_value")
        if diff is not None:
            ci = (float(ci[0]), float(ci[1])) if ci else None
            sig = res.get("significant")
            if sig is None:
                sig = bool(ci and (ci[0] > 0 or ci[1] < 0))
            better = None if diff == 0 else (diff > 0) == hib
            return Delta(f"{model} B", f"{model} A", float(diff), ci, p,
                         f"{res.get('test') or 'paired-bootstrap'}, {len(keys)} matched samples", bool(sig), better)
    diff = None
    if mva is not None and mvb is not None and mva.value is not None and mvb.value is not None:
        diff = mvb.value - mva.value
    better = None if not diff else (diff > 0) == hib
    return Delta(f"{model} B", f"{model} A", diff, better=better)


def _resolution_changes(a: dict, b: dict) -> list[str]:
    out = []
    for k in ("chain", "adapter", "template", "template_hash", "dtype", "params"):
        va, vb = a.get(k), b.get(k)
        if va != vb and not (va is None and vb is None):
            fa = " → ".join(map(str, va)) if isinstance(va, list) else va
            fb = " → ".join(map(str, vb)) if isinstance(vb, list) else vb
            out.append(f"{k}: {fa if fa is not None else '–'} ⇒ {fb if fb is not None else '–'}")
    return out


def build_comparison(run_a: RunDir, run_b: RunDir) -> CompareView:
    a, b = _side("A", run_a), _side("B", run_b)
    models = [m for m in b.models if m in a.models]
    if not models:
        raise HarnessError(
            f"{run_a.path} and {run_b.path} have no model name in common "
            f"(A: {', '.join(a.models) or 'none'}; B: {', '.join(b.models) or 'none'})",
            fix="compare two runs of the same models (same names in harness.yaml)",
        )
    ga, gb = a.scores.get("groups") or {}, b.scores.get("groups") or {}
    groups = [g for g in gb if g in ga and isinstance(ga[g], dict) and isinstance(gb[g], dict)]
    pa, pb = _PerSample(run_a), _PerSample(run_b)
    per_model: dict[str, list[Row]] = {m: [] for m in models}
    overview: list[dict[str, Any]] = []
    unpaired = 0
    for g in groups:
        kind = str(gb[g].get("kind") or ga[g].get("kind") or "task")
        ma_all, mb_all = ga[g].get("models") or {}, gb[g].get("models") or {}
        metrics: list[str] = []
        for m in models:
            for k in mb_all.get(m) or {}:
                if k in (ma_all.get(m) or {}) and k not in metrics:
                    metrics.append(k)
        for k in metrics:
            label = k if g == "all" else f"{g} · {k}"
            line: dict[str, Any] = {"label": label, "cells": {}, "higher_is_better": True}
            for m in models:
                mva, mvb = metric_value((ma_all.get(m) or {}).get(k)), metric_value((mb_all.get(m) or {}).get(k))
                if mva is None and mvb is None:
                    line["cells"][m] = None
                    continue
                hib = (mvb or mva).higher_is_better
                line["higher_is_better"] = hib
                d = _paired(pa.values(g, m, k), pb.values(g, m, k), kind, hib, mva, mvb, m)
                unpaired += d.test is None and d.diff is not None
                cells = [Cell("A", mva), Cell("B", mvb)]
                vals = [c.mv.value for c in cells if c.mv is not None and c.mv.value is not None]
                if len(vals) == 2 and vals[0] != vals[1]:
                    best = max(vals) if hib else min(vals)
                    for c in cells:
                        c.best = c.mv.value == best
                dec = decimals_for([v for c in cells if c.mv for v in (c.mv.value, *(c.mv.ci or ()))])
                row = Row(g, k, label, hib, cells, [d], dec, show_stderr=(kind == "benchmark"))
                per_model[m].append(row)
                line["cells"][m] = (row, d)
            overview.append(line)

    warnings, notes = [], []
    if a.config_hash and b.config_hash and a.config_hash != b.config_hash:
        notes.append(f"The runs used different configs ({a.config_hash[:12]} vs {b.config_hash[:12]}).")
    changes = {m: _resolution_changes(a.model_info.get(m) or {}, b.model_info.get(m) or {}) for m in models}
    tmpl = [m for m in models if (a.model_info.get(m) or {}).get("template_hash")
            != (b.model_info.get(m) or {}).get("template_hash")]
    if tmpl:
        warnings.append(f"The prompt template changed between the runs for {', '.join(tmpl)}: "
                        "differences may come from the prompt format, not the weights.")
    ja, jb = a.judge.get("model") or a.judge.get("backend"), b.judge.get("model") or b.judge.get("backend")
    if ja and jb and ja != jb:
        warnings.append(f"The judge changed between the runs ({ja} ⇒ {jb}): judge scores are not comparable.")
    for side, groups_ in ((a, ga), (b, gb)):
        small = is_small_local_judge(side.judge, groups_)
        if small:
            warnings.append(f"Run {side.label} used a small local judge ({small}): judge results are indicative only.")
    if unpaired:
        notes.append(f"{unpaired} change(s) have no paired test: the runs share no scored sample ids there.")
    only_a = [m for m in a.models if m not in models]
    only_b = [m for m in b.models if m not in models]

    metric = pool = None
    for r in per_model[models[0]]:
        if r.group == "all" or gb.get(r.group, {}).get("kind") == "task":
            metric, pool = r.metric, "all" if "all" in groups else r.group
            break
    samples = {m: _changed_samples(pa, pb, m, pool, metric) for m in models} if metric else {}
    return CompareView(a, b, models, only_a, only_b, warnings, notes, per_model, overview, changes, samples, metric)


def _changed_samples(pa: _PerSample, pb: _PerSample, model: str, group: str, metric: str, k: int = 3) -> list[dict]:
    """The ``k`` samples of ``group`` (``all``: every task) whose ``metric`` changed most from A to B."""
    va, vb = pa.values(group, model, metric), pb.values(group, model, metric)
    order = _match_order("task")
    keys = sorted(set(va) & set(vb), key=lambda key: (-abs(vb[key] - va[key]), order(key)))[:k]
    out = []
    for key in keys:
        task, sid = key.split("/", 1)
        sa, sb = pa.sample(model, task, sid), pb.sample(model, task, sid)
        if sa is None or sb is None or vb[key] == va[key]:
            continue
        out.append({"task": task, "id": sid, "instruction": sb.instruction, "input": sb.input,
                    "reference": sb.reference, "a": sa.response, "b": sb.response,
                    "va": va[key], "vb": vb[key], "diff": vb[key] - va[key]})
    return out


def render_markdown(cv: CompareView) -> str:
    from harness.report.markdown import md_escape, metric_table, table

    out = [f"# Run comparison · {md_escape(cv.a.run_id)} → {md_escape(cv.b.run_id)}", ""]
    out += [table(["", "run A (before)", "run B (after)"], [
        ["run id", md_escape(cv.a.run_id), md_escape(cv.b.run_id)],
        ["created", md_escape(cv.a.created or "–"), md_escape(cv.b.created or "–")],
        ["config hash", md_escape(cv.a.config_hash[:12] or "–"), md_escape(cv.b.config_hash[:12] or "–")],
        ["models", md_escape(", ".join(cv.a.models)), md_escape(", ".join(cv.b.models))],
        ["judge", md_escape(cv.a.judge.get("model") or cv.a.judge.get("backend") or "–"),
         md_escape(cv.b.judge.get("model") or cv.b.judge.get("backend") or "–")],
    ], ["---", "---", "---"]), ""]
    for w in cv.warnings:
        out += [f"> **WARNING:** {md_escape(w)}", ""]
    for n in cv.notes:
        out += [f"_{md_escape(n)}_", ""]
    if cv.only_a or cv.only_b:
        out += [f"Only in A: {md_escape(', '.join(cv.only_a) or '–')}; only in B: {md_escape(', '.join(cv.only_b) or '–')}.", ""]
    out += ["## Change B − A", "",
            ("▲ better / ▼ worse (direction-aware); † the paired bootstrap over matched samples is significant at 95%; "
            "no marker: not significant or no matched samples."), ""]
    rows = []
    for line in cv.overview:
        cells = []
        for m in cv.models:
            rd = line["cells"].get(m)
            cells.append(rd[0].delta_text(rd[1]) if rd else "–")
        rows.append([f"{md_escape(line['label'])} {'↑' if line['higher_is_better'] else '↓'}"] + cells)
    out += [table(["metric"] + [md_escape(m) for m in cv.models], rows), ""]
    for m in cv.models:
        out += [f"## {md_escape(m)}", ""]
        if cv.changes.get(m):
            out += ["Resolution changed: " + md_escape("; ".join(cv.changes[m])), ""]
        if cv.per_model[m]:
            out += [metric_table(cv.per_model[m], ["A", "B"], [("B", "A")]), ""]
        for s in cv.samples.get(m, []):
            out += [(f"**{md_escape(s['task'])} · {md_escape(s['id'])}**: {md_escape(cv.sample_metric)} "
                    f"{s['va']:.3f} → {s['vb']:.3f} ({s['diff']:+.3f})"), "",
                    table(["", "text"], [["instruction", md_escape(s["instruction"], max_len=300)],
                                         ["reference", md_escape(s["reference"], max_len=300)],
                                         ["A", md_escape(s["a"], max_len=300)],
                                         ["B", md_escape(s["b"], max_len=300)]], ["---", "---"]), ""]
    return "\n".join(out).rstrip() + "\n"


def render_html(cv: CompareView) -> str:
    from harness.report.charts import model_colors
    from harness.report.html import environment

    colors = {"A": "#94a3b8", "B": "#2563eb", **model_colors(cv.models)}
    return environment().get_template("compare.html.j2").render(cv=cv, colors=colors)


def write_comparison(run_a: str | Path, run_b: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``compare.md`` and ``compare.html`` into ``out_dir`` (created if needed)."""
    ra, rb = open_run(run_a), open_run(run_b)
    if ra.path.resolve() == rb.path.resolve():
        raise HarnessError(f"both runs are {ra.path}", fix="pass two different run directories")
    cv = build_comparison(ra, rb)
    out = RunDir(out_dir)
    return out.write_text("compare.md", render_markdown(cv)), out.write_text("compare.html", render_html(cv))
