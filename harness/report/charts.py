"""Inline SVG charts (no scripts, fonts or CDNs): bar charts with interval whiskers, line charts.

Every piece of text placed in the SVG is XML-escaped here; the result is marked safe for Jinja.
"""

from __future__ import annotations

import math
from html import escape

PALETTE = ["#6b7280", "#2563eb", "#ea580c", "#059669", "#9333ea", "#db2777", "#0891b2", "#ca8a04"]


def model_colors(models: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _e(s) -> str:
    return escape(str(s), quote=True)


def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def bar_chart(title: str, bars: list[tuple[str, float | None, tuple[float, float] | None]],
              colors: dict[str, str], *, higher_is_better: bool | None = True, width: int = 300, height: int = 200) -> str:
    """One metric: a bar per model with its 95% interval as a whisker."""
    pad_l, pad_r, pad_t, pad_b = 44, 10, 28, 34
    vals = [v for _, v, _ in bars if v is not None]
    his = [ci[1] for _, v, ci in bars if ci and v is not None] + vals
    los = [ci[0] for _, v, ci in bars if ci and v is not None] + vals + [0.0]
    ticks = _nice_ticks(min(los), max(his) if his else 1.0)
    y0, y1 = ticks[0], ticks[-1]
    ph = height - pad_t - pad_b
    pw = width - pad_l - pad_r

    def y(v):
        return pad_t + ph * (1 - (v - y0) / (y1 - y0))

    arrow = {True: "↑", False: "↓", None: "·"}[higher_is_better]
    out = [(f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">'),
           f'<title>{_e(title)} ({ {True: "higher is better", False: "lower is better", None: "no better direction"}[higher_is_better] })</title>',
           f'<text x="{pad_l}" y="16" class="ct">{_e(title)} <tspan class="cm">{arrow}</tspan></text>']
    for t in ticks:
        yy = y(t)
        out.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        out.append(f'<text x="{pad_l - 6}" y="{yy + 3.5:.1f}" class="tick" text-anchor="end">{_tick_label(t)}</text>')
    n = max(1, len(bars))
    slot = pw / n
    bw = min(46.0, slot * 0.62)
    for i, (name, v, ci) in enumerate(bars):
        cx = pad_l + slot * (i + 0.5)
        color = colors.get(name, "#6b7280")
        if v is not None:
            top, base = y(max(v, y0)), y(max(0.0, y0))
            out.append(f'<rect x="{cx - bw / 2:.1f}" y="{min(top, base):.1f}" width="{bw:.1f}" '
                       f'height="{abs(base - top):.1f}" fill="{color}" rx="2"><title>{_e(name)}: {v:.4g}'
                       + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "") + "</title></rect>")
            if ci:
                lo_y, hi_y = y(ci[0]), y(ci[1])
                out.append(f'<path d="M{cx:.1f} {lo_y:.1f}V{hi_y:.1f}M{cx - 6:.1f} {lo_y:.1f}h12M{cx - 6:.1f} '
                           f'{hi_y:.1f}h12" class="whisker"/>')
        else:
            out.append(f'<text x="{cx:.1f}" y="{y(y0) - 6:.1f}" class="tick" text-anchor="middle">n/a</text>')
        out.append(f'<text x="{cx:.1f}" y="{height - pad_b + 16}" class="xl" text-anchor="middle">{_e(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def line_chart(title: str, series: list[tuple[str, list[tuple[float, float]], str, bool]], *,
               x_label: str = "step", width: int = 560, height: int = 240) -> str:
    """``series``: (name, points, color, dashed). Points are (x, y); eval points get dots."""
    pad_l, pad_r, pad_t, pad_b = 50, 16, 30, 40
    pts = [p for _, ps, _, _ in series for p in ps]
    if not pts:
        return ""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    xt = _nice_ticks(min(xs), max(xs), 5)
    yt = _nice_ticks(min(ys), max(ys), 4)
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(v):
        return pad_l + pw * (v - xt[0]) / (xt[-1] - xt[0])

    def sy(v):
        return pad_t + ph * (1 - (v - yt[0]) / (yt[-1] - yt[0]))

    out = [(f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">'),
           f'<title>{_e(title)}</title><text x="{pad_l}" y="18" class="ct">{_e(title)}</text>']
    for t in yt:
        out.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" class="grid"/>')
        out.append(f'<text x="{pad_l - 6}" y="{sy(t) + 3.5:.1f}" class="tick" text-anchor="end">{_tick_label(t)}</text>')
    for t in xt:
        out.append(f'<text x="{sx(t):.1f}" y="{height - pad_b + 16}" class="tick" text-anchor="middle">'
                   f'{_tick_label(t)}</text>')
    out.append(f'<text x="{pad_l + pw / 2:.1f}" y="{height - 6}" class="xl" text-anchor="middle">{_e(x_label)}</text>')
    lx = pad_l + pw
    for i, (name, ps, color, dashed) in enumerate(series):
        if not ps:
            continue
        d = "M" + " L".join(f"{sx(x):.1f} {sy(v):.1f}" for x, v in ps)
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        out.append(f'<path d="{d}" fill="none" stroke="{color}" stroke-width="2"{dash}><title>{_e(name)}</title></path>')
        if dashed or len(ps) <= 12:
            for x, v in ps:
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(v):.1f}" r="3" fill="{color}">'
                           f"<title>{_e(name)} step {x:g}: {v:.4g}</title></circle>")
        # legend, right-aligned in the top margin
        ly = 12 + 14 * i
        out.append(f'<line x1="{lx - 120}" x2="{lx - 100}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx - 95}" y="{ly + 4}" class="tick">{_e(name)}</text>')
    out.append("</svg>")
    return "".join(out)
