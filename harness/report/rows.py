"""The tables of a report: ``Row`` (one metric, a ``Cell`` per model, a ``Delta`` per comparison)
built from a scores.json group, and the number formatting both renderers share."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.records import Coverage, MetricValue, PairedTest

SIG_NOTE = "▲ better / ▼ worse than the model compared against (direction-aware); † the paired test is significant at 95%"


# ---------------------------------------------------------------------------------- numbers
def decimals_for(values: list[float | None]) -> int:
    """Digits after the point for one row: 3 below 10, 2 below 100, else 1."""
    mags = [abs(v) for v in values if v is not None and math.isfinite(v)]
    top = max(mags) if mags else 0.0
    return 3 if top < 10 else 2 if top < 100 else 1


def fmt(v: float | None, dec: int = 3, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:+.{dec}f}" if sign else f"{v:.{dec}f}"


def fmt_ci(ci, dec: int = 3) -> str:
    if not ci:
        return ""
    return f"[{fmt(ci[0], dec)}, {fmt(ci[1], dec)}]"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    s = float(s)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def fmt_count(n: Any) -> str:
    if isinstance(n, (int, float)) and n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return str(n)


# ---------------------------------------------------------------------------------- tables
@dataclass
class Delta:
    """``model`` minus ``ref`` on one metric, with the paired test when there is one."""

    model: str
    ref: str
    diff: float | None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    test: str | None = None
    significant: bool = False
    better: bool | None = None  # direction-aware; None when diff is 0 or unknown

    @property
    def marker(self) -> str:
        if not self.significant or self.better is None:
            return ""
        return ("▲" if self.better else "▼") + "†"

    @property
    def tooltip(self) -> str:
        parts = []
        if self.test:
            parts.append(self.test)
        if self.ci:
            parts.append(f"95% CI [{self.ci[0]:+.4g}, {self.ci[1]:+.4g}]")
        if self.p_value is not None:
            parts.append(f"p = {self.p_value:.3g}")
        if not self.test:
            parts.append("no paired test")
        return ", ".join(parts)


@dataclass
class Cell:
    model: str
    mv: MetricValue | None
    best: bool = False
    insufficient: str | None = None  # why the value is too thin to read (then it is not shown)

    @property
    def readable(self) -> bool:
        return self.mv is not None and self.mv.value is not None and self.insufficient is None

    @property
    def coverage_text(self) -> str:
        """"21", "6 (4 missing)" or "–"."""
        if self.mv is None:
            return "–"
        return f"{self.mv.n}" + (f" ({self.mv.missing} missing)" if self.mv.missing else "")


@dataclass
class Row:
    group: str
    metric: str
    label: str
    higher_is_better: bool | None  # None: no better direction (e.g. answer length)
    cells: list[Cell]
    deltas: list[Delta]
    dec: int = 3
    show_stderr: bool = False

    def value_text(self, cell: Cell, with_ci: bool = True) -> str:
        mv = cell.mv
        if mv is None or mv.value is None:
            return "–"
        if cell.insufficient:
            return f"insufficient ({cell.insufficient})"
        out = fmt(mv.value, self.dec)
        if self.show_stderr and mv.stderr is not None and mv.value is not None:
            out += f" ± {fmt(mv.stderr, self.dec)}"
        if with_ci and mv.ci and mv.value is not None:
            out += " " + fmt_ci(mv.ci, self.dec)
        return out

    def ci_text(self, cell: Cell) -> str:
        mv = cell.mv
        return fmt_ci(mv.ci, self.dec) if cell.readable and mv.ci else ""

    def coverage_text(self) -> str:
        """The n / missing column: one figure when every model has the same, else one per model."""
        texts = [c.coverage_text for c in self.cells]
        return texts[0] if len(set(texts)) == 1 else " · ".join(texts)

    def delta_text(self, d: Delta) -> str:
        if d.diff is None:
            return "–"
        return (fmt(d.diff, self.dec, sign=True) + " " + d.marker).strip()


def comparisons(models: list[str]) -> list[tuple[str, str]]:
    """Each later model vs the first (base), then each model vs the one before it."""
    out = [(m, models[0]) for m in models[1:]]
    out += [(models[i], models[i - 1]) for i in range(2, len(models))]
    return out


def metric_value(obj: Any) -> MetricValue | None:
    """A stored aggregate as a MetricValue; None when it is missing or malformed."""
    if not isinstance(obj, dict):
        return None
    try:
        return MetricValue.from_dict(obj)
    except (TypeError, ValueError):
        return None


def find_test(paired: list[dict], metric: str, a: str, b: str) -> tuple[PairedTest | None, int]:
    """The stored test of ``a`` vs ``b`` (sign +1) or ``b`` vs ``a`` (sign -1)."""
    for p in paired or []:
        if p.get("metric") != metric:
            continue
        if p.get("a") == a and p.get("b") == b:
            return PairedTest.from_dict(p), 1
        if p.get("a") == b and p.get("b") == a:
            return PairedTest.from_dict(p), -1
    return None, 1


def make_delta(model: str, ref: str, a: MetricValue | None, b: MetricValue | None, hib: bool | None,
               test: PairedTest | None = None, sign: int = 1) -> Delta:
    diff = ci = p = name = None
    significant = False
    if test is not None and test.diff is not None:
        diff = sign * float(test.diff)
        if test.ci:
            lo, hi = sign * float(test.ci[0]), sign * float(test.ci[1])
            ci = (min(lo, hi), max(lo, hi))
        p, name, significant = test.p_value, test.test, bool(test.significant)
    elif a is not None and b is not None and a.value is not None and b.value is not None:
        diff = a.value - b.value
    better = None
    if diff is not None and diff != 0 and hib is not None:
        better = (diff > 0) == hib
    return Delta(model, ref, diff, ci, p, name, significant, better)


def metric_rows(group: str, gdata: dict, models: list[str], *, label_prefix: str = "",
                metrics: list[str] | None = None, show_stderr: bool = False,
                coverage: Coverage | None = None) -> list[Row]:
    """One Row per metric of a scores.json group. Values below ``coverage`` are "insufficient":
    not shown, never best, and no delta is drawn from them."""
    per_model = gdata.get("models") or {}
    names: list[str] = []
    for m in models:
        for k in per_model.get(m) or {}:
            if k not in names:
                names.append(k)
    if metrics is not None:
        names = [k for k in names if k in metrics]
    rows = []
    for k in names:
        cells = [Cell(m, metric_value((per_model.get(m) or {}).get(k))) for m in models]
        present = [c for c in cells if c.mv is not None]
        for c in present:
            c.insufficient = coverage.shortfall(c.mv) if coverage is not None else None
        hib = present[0].mv.higher_is_better if present else True
        if k in ((gdata.get("info") or {}).get("neutral") or ()):
            hib = None
        vals = [c.mv.value for c in present if c.readable]
        if len(vals) > 1 and hib is not None:
            best = max(vals) if hib else min(vals)
            for c in present:
                c.best = c.readable and c.mv.value == best
        by = {c.model: c.mv for c in cells if c.readable}
        deltas = []
        for m, ref in comparisons(models):
            if m not in by or ref not in by:  # a side is missing or too thin: no difference is drawn
                deltas.append(Delta(m, ref, None))
                continue
            test, sign = find_test(gdata.get("paired") or [], k, m, ref)
            deltas.append(make_delta(m, ref, by.get(m), by.get(ref), hib, test, sign))
        dec = decimals_for([v for c in present if c.readable for v in (c.mv.value, *(c.mv.ci or ()))])
        rows.append(Row(group, k, f"{label_prefix}{k}", hib, cells, deltas, dec, show_stderr))
    return rows
