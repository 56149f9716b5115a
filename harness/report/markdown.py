"""report.md: GitHub-flavoured Markdown. Untrusted text is escaped (HTML, table pipes, newlines)."""

from __future__ import annotations

import json
import re
from typing import Any

from harness.report.arena import arena_markdown
from harness.report.layout import fold
from harness.report.rows import SIG_NOTE, Row, fmt, fmt_count, fmt_seconds
from harness.report.view import ReportView, engine_label, main_metric, parity_label, top_differences

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


def judge_card_lines(card) -> list[str]:
    from harness.report.judge_card import card_rows, self_preference_line

    header, rows = card_rows(card)
    if not rows:
        return []
    out = ["### Judge reliability", "", table([md_escape(h) for h in header],
                                               [[md_escape(c) for c in r] for r in rows]), ""]
    line = self_preference_line(card)
    return out + ([md_escape(line), ""] if line else [])


def md_escape(text: Any, *, max_len: int | None = None) -> str:
    """Safe inside a GFM table cell or a heading: no raw HTML, no table breakers, one line."""
    s = "" if text is None else str(text)
    if max_len is not None and len(s) > max_len:
        s = s[: max_len - 1] + "…"
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    return "<br>".join(part.strip() for part in s.split("\n")) if "\n" in s else s


def table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A GFM table; cells must already be escaped."""
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for r in rows:
        assert len(r) == len(header), (header, r)
        lines.append("| " + " | ".join(c if c != "" else " " for c in r) + " |")
    return "\n".join(lines)


def metric_table(rows: list[Row], models: list[str], comps: list[tuple[str, str]], *, with_n: bool = False,
                 grouped: bool = False, by_group: dict[str, str] | None = None) -> str:
    """One GFM table. ``grouped``: rows by family under a bold header row, and the rows with no
    better direction or one value for every model in a folded table below it."""
    if grouped:
        groups, folded = fold(rows, by_group)
        out = []
        if groups:
            out.append(_table([r for g in groups for r in g.rows], models, comps, with_n,
                              families=[(g.title, len(g.rows)) for g in groups] if len(groups) > 1 else None))
        if folded:
            out += ["", f"<details><summary>{len(folded)} more: no better direction or the same value for "
                    "every model</summary>", "", metric_table(folded, models, comps, with_n=with_n), "", "</details>"]
        return "\n".join(out).strip("\n")
    return _table(rows, models, comps, with_n)


def _table(rows: list[Row], models: list[str], comps: list[tuple[str, str]], with_n: bool,
           families: list[tuple[str, int]] | None = None) -> str:
    header = ["metric"] + [md_escape(m) for m in models] + [f"{md_escape(a)} − {md_escape(b)}" for a, b in comps]
    if with_n:
        header.append("n" + (" (per model when they differ)" if len(models) > 1 else ""))
    body = []
    starts = {}
    i = 0
    for title, n in families or []:
        starts[i] = title
        i += n
    for k, r in enumerate(rows):
        if k in starts:
            body.append([f"**{md_escape(starts[k])}**"] + [""] * (len(header) - 1))
        arrow = {True: "↑", False: "↓", None: "·"}[r.higher_is_better]
        line = [f"{md_escape(r.label)} {arrow}"]
        for c in r.cells:
            v = r.value_text(c)  # digits, signs and brackets only: no escaping needed
            line.append(f"**{v}**" if c.best else v)
        line += [r.delta_text(d) for d in r.deltas]
        if with_n:
            line.append(r.coverage_text())
        body.append(line)
    return table(header, body)


def _kv(d: dict[str, Any]) -> str:
    parts = []
    for k, v in d.items():
        if isinstance(v, (dict, list)):
            v = json.dumps(v, ensure_ascii=False)
        parts.append(f"{md_escape(k)}: {md_escape(v, max_len=200)}")
    return "; ".join(parts)


def _legend(view: ReportView) -> str:
    return (f"Values: mean [95% interval: Wilson score for 0/1 metrics, bootstrap otherwise]; ↑/↓ after a metric: higher/lower is better (· no better direction, e.g. length); "
            f"**bold**: best in the row. Deltas: {SIG_NOTE}.")


def render_environment(view: ReportView) -> list[str]:
    """The run's metadata and environment, then the models table (at the end of the report)."""
    out = ["## Models and environment", ""]
    meta = [["run id", md_escape(view.run_id)], ["created", md_escape(view.created or "–")],
            ["config hash", f"`{md_escape(view.config_hash[:12])}`" if view.config_hash else "–"]]
    env = view.env
    if env.get("device"):
        meta.append(["device", md_escape(env["device"])])
    if env.get("python"):
        meta.append(["python", md_escape(env["python"])])
    pk = env.get("packages") or {}
    if pk:
        meta.append(["libraries", md_escape(", ".join(f"{k} {v}" for k, v in pk.items()))])
    git = env.get("git_commit") or (env["git"].get("commit") if isinstance(env.get("git"), dict) else env.get("git"))
    if git:
        meta.append(["git", md_escape(git)])
    if view.judge_info:
        meta.append(["judge", md_escape(", ".join(f"{k} {v}" for k, v in view.judge_info.items()))])
    if view.wall_time_s is not None:
        meta.append(["wall time", md_escape(fmt_seconds(view.wall_time_s))])
    out += [table(["", ""], meta, ["---", "---"]), ""]
    rows = []
    for m in view.models:
        mi = view.model_info.get(m) or {}
        chain = mi.get("chain") or []
        rows.append([
            f"**{md_escape(m)}**",
            md_escape(" → ".join(str(c) for c in chain) if isinstance(chain, list) else chain),
            md_escape(mi.get("adapter") or "–"),
            md_escape(f"{mi.get('template') or '–'} ({mi.get('template_hash') or '?'})"),
            md_escape(engine_label(mi)),
            md_escape(parity_label(mi)),
            md_escape(mi.get("dtype") or "–"),
            md_escape(fmt_count(mi["params"]) if mi.get("params") is not None else "–"),
            md_escape(fmt_seconds(mi.get("wall_time_s")) if mi.get("wall_time_s") is not None else "–"),
        ])
    out += [table(["model", "resolved chain", "adapter", "template (hash)", "backend", "parity vs transformers",
                   "dtype", "params", "wall time"], rows, ["---"] * 9), ""]
    return out




def _tasks(view: ReportView) -> list[str]:
    """One table per task, neutral and constant rows folded."""
    out: list[str] = []
    comps = view.comparisons
    out += ["## Tasks", ""]
    for s in view.tasks:
        out += [f"### {md_escape(s.name)}", "", metric_table(s.rows, view.models, comps, with_n=True, grouped=True), ""]
        if s.info:
            out += [f"<sub>{_kv(s.info)}</sub>", ""]
    return out


def _benchmarks(view: ReportView) -> list[str]:
    """The lm-eval benchmarks, mean ± standard error."""
    out: list[str] = []
    comps = view.comparisons
    out += ["## Benchmarks", "", "mean ± standard error [95% interval]", "",
            metric_table(view.benchmarks, view.models, comps, with_n=True), ""]
    for g, info in view.benchmark_info.items():
        if info:
            out += [f"<sub>{md_escape(g)}: {_kv(info)}</sub>", ""]
    return out


def _judge(view: ReportView) -> list[str]:
    """Judge scores, missing verdicts, reliability and the pairwise matrices."""
    out: list[str] = []
    comps = view.comparisons
    out += ["## Judge", ""]
    jm = view.judge_info.get("model") or view.judge_info.get("backend")
    if jm:
        out += [f"Judge model: `{md_escape(jm)}`", ""]
    out += [metric_table(view.judge, view.models, comps, with_n=True), ""]
    miss = [[md_escape(m)] + [str(c.mv.missing if c.mv else "–") for r in view.judge for c in r.cells
                              if c.model == m] for m in view.models]
    out += ["Missing verdicts (unparseable or failed judge replies; never counted as 0):", "",
            table(["model"] + [md_escape(r.label) for r in view.judge], miss), ""]
    out += judge_card_lines(view.judge_card)
    for pw in view.pairwise:
        out += [f"### Pairwise: {md_escape(pw.get('judge') or pw['group'])}", "",
                "Row model against column model: win / tie / loss (missing).", ""]
        mat = pw["matrix"]
        rows = []
        for a in view.models:
            line = [f"**{md_escape(a)}**"]
            for b in view.models:
                rec = (mat.get(a) or {}).get(b)
                line.append("—" if a == b or rec is None else
                            f"{rec['win']} / {rec['tie']} / {rec['loss']}" + (f" ({rec['missing']})" if rec["missing"] else ""))
            rows.append(line)
        out += [table(["", *[md_escape(m) for m in view.models]], rows), ""]
        cons = pw.get("consistency")
        if isinstance(cons, dict):
            out += ["Position-swap consistency (same winner in both orders): "
                    + ", ".join(f"{md_escape(k.replace('_vs_', ' vs '))} {fmt(v * 100, 0) if isinstance(v, (int, float)) else md_escape(v)}%"
                                for k, v in cons.items()), ""]
        elif isinstance(cons, (int, float)):
            out += [f"Position-swap consistency: {fmt(cons * 100, 0)}%", ""]
        lb = pw.get("length_bias")
        if isinstance(lb, dict) and lb:
            out += [f"Length bias: {_kv(lb)}", ""]
        elif lb is not None:
            out += [f"Length bias: {md_escape(lb)}", ""]
    return out


def _training(view: ReportView) -> list[str]:
    """Each trained model's manifest: loss and DPO reward facts, hyperparameters."""
    out: list[str] = ["## Training", ""]
    for t in view.training:
        out += [f"### {md_escape(t.model)} ({md_escape(t.kind)} from {md_escape(t.base or '?')})", ""]
        facts = []
        if t.loss:
            facts.append(f"train loss {t.loss[0][1]:.4f} (step {t.loss[0][0]:g}) → {t.loss[-1][1]:.4f} (step {t.loss[-1][0]:g})")
        if t.eval_loss:
            best = min(t.eval_loss, key=lambda p: p[1])
            facts.append(f"eval loss {t.eval_loss[-1][1]:.4f} at the end, best {best[1]:.4f} at step {best[0]:g}")
        if t.wall_time_s is not None:
            facts.append(f"wall time {fmt_seconds(t.wall_time_s)}")
        if t.device:
            facts.append(f"device {md_escape(t.device)}")
        for key, pts in t.rewards + t.reward_acc:
            facts.append(f"{md_escape(key)} {pts[0][1]:.3f} → {pts[-1][1]:.3f}")
        if facts:
            out += ["; ".join(facts), ""]
        if t.hyper_rows:
            out += [table(["hyperparameter", "value"], [[md_escape(k), md_escape(v, max_len=200)] for k, v in t.hyper_rows],
                          ["---", "---:"]), ""]
        if t.detail_rows:
            out += [table(["manifest", "value"], [[md_escape(k), md_escape(v, max_len=200)] for k, v in t.detail_rows],
                          ["---", "---"]), ""]
    return out


def _samples(view: ReportView, n_samples: int) -> list[str]:
    """The samples whose main metric differs most between the first and the last model."""
    out: list[str] = []
    metric = main_metric(view)
    if metric and len(view.models) > 1:
        a, b = view.models[0], view.models[-1]
        top = top_differences(view.items, metric, a, b, n_samples)
        if top:
            out += [f"## Samples with the largest {md_escape(metric)} difference ({md_escape(b)} − {md_escape(a)})", "",
                    "The full side-by-side sample browser is in report.html.", ""]
            for i, (d, it) in enumerate(top, 1):
                out += [f"### {i}. {md_escape(it['task'])} · {md_escape(it['id'])} (Δ {d:+.3f})", ""]
                rows = [["instruction", md_escape(it["instruction"], max_len=400)]]
                if it.get("input"):
                    rows.append(["input", md_escape(it["input"], max_len=400)])
                rows.append(["reference", md_escape(it["reference"], max_len=400)])
                for m, ans in it["answers"].items():
                    v = ans["metrics"].get(metric)
                    label = f"**{md_escape(m)}** ({md_escape(metric)} {fmt(v)})"
                    rows.append([label, md_escape(ans["response"], max_len=400)])
                out += [table(["", "text"], rows, ["---", "---"]), ""]
    return out


def _details(title: str, body: list[str]) -> list[str]:
    """A folded block (valid GFM: blank lines around the Markdown inside)."""
    if not body:
        return []
    return [f"<details><summary>{title}</summary>", "", *body, "</details>", ""]


def render_verdict(view: ReportView) -> list[str]:
    v = view.verdict
    if v is None:
        return []
    out = ["## Verdict", "", f"**{md_escape(v.headline)}**", ""]
    bullets = [p.sentence() + "." for p in v.pairs] + v.extra
    out += [f"- {md_escape(b)}" for b in bullets]
    out += [f"- _{md_escape(n)}_" for n in v.notes]
    return out + ([""] if bullets or v.notes else [])


def render_markdown(view: ReportView, *, n_samples: int = 5) -> str:
    sub = [view.created or "", "models: " + " / ".join(view.models),
           f"config `{view.config_hash[:12]}`" if view.config_hash else "",
           f"wall time {fmt_seconds(view.wall_time_s)}" if view.wall_time_s is not None else ""]
    out = [f"# Evaluation report · {md_escape(view.run_id)}", "",
           "<sub>" + " · ".join(md_escape(x) if not x.startswith("config") else x for x in sub if x) + "</sub>", ""]
    out += render_verdict(view)
    for w in view.warnings:
        out += [f"> **WARNING:** {md_escape(w)}", ""]
    out += ["## Summary", "", _legend(view), ""]
    if view.summary:
        out += [metric_table(view.summary, view.models, view.comparisons, with_n=True, grouped=True,
                             by_group=view.row_families), ""]
    else:
        out += ["_No scores were stored._", ""]
    if view.tasks and view.tasks_in_summary:  # no pooled group: the summary has every task's rows already
        out += [line for s in view.tasks if s.info for line in (f"<sub>{md_escape(s.name)}: {_kv(s.info)}</sub>", "")]
    elif view.tasks:
        out += _details(f"<b>Tasks</b>: {len(view.tasks)} table(s), one per task", _tasks(view))
    if view.benchmarks:
        out += _details("<b>Benchmarks</b>", _benchmarks(view))
    if view.judge_groups:
        out += _details("<b>Judge</b>: scores, missing verdicts, pairwise", _judge(view))
    if view.arena:
        out += _details("<b>Arena</b>: human votes", arena_markdown(view.arena, md_escape, table))
    out += _details("<b>Samples</b>: the largest differences", _samples(view, n_samples))
    if view.training:
        out += _details(f"<b>Training</b>: {len(view.training)} manifest(s)", _training(view))
    out += _details("<b>Models and environment</b>", render_environment(view))
    return "\n".join(out).rstrip() + "\n"
