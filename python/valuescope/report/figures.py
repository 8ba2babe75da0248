"""The report's figures: matplotlib drawn straight to SVG text, ready to inline in the HTML.

Figures are built on `matplotlib.figure.Figure` without pyplot, so the report neither needs a
display nor changes the backend or state of a notebook that calls it. Text stays text in the SVG
(`svg.fonttype: none`): files stay small and the words stay searchable. Every function takes
already capped lists: a figure never grows with the size of the analysis.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

import matplotlib
import matplotlib.ticker
from matplotlib.colors import SymLogNorm, TwoSlopeNorm
from matplotlib.figure import Figure

RC: dict[Any, Any] = {  # Any keys: matplotlib's stubs want literal rc names
    "svg.fonttype": "none",
    "svg.hashsalt": "valuescope",  # stable ids: the same analysis gives the same file
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "x",
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "figure.dpi": 72,
}
AI = "#3b6ea8"
HUMAN = "#c8773a"
GREY = "#9a9a9a"
PALETTE = ["#3b6ea8", "#c8773a", "#5a9e6f", "#b0485b", "#7d64a8", "#8c7b4f", "#4ba3b5", "#d4a03c"]
# Response types from support to resistance: a diverging palette reads in that order.
RESPONSE_COLORS = ["#1a7a4c", "#7dbf8e", "#c9c9c9", "#8fb4d9", "#e6a36b", "#c0392b", "#5b5b5b"]

_META = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_HEAD = re.compile(r"^.*?(?=<svg)", re.S)


def short(label: str, width: int = 38) -> str:
    """A value string as an axis label: truncated (tables show it whole), and with its dollar
    signs escaped, else matplotlib would read "$...$" in a value as mathtext."""
    if len(label) > width:
        label = label[: width - 1].rstrip() + "…"
    return label.replace("$", "\\$")


def to_svg(fig: Figure) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context(RC), warnings.catch_warnings():
        # Values in scripts DejaVu lacks (CJK, say) stay text in the SVG and the browser picks
        # a font for them; matplotlib's warning about its own font is noise here.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = _HEAD.sub("", buf.getvalue(), count=1)  # drop the XML prologue and DOCTYPE
    return _META.sub("", svg, count=1)  # and the RDF block with its external namespace URLs


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(RC):
        return Figure(figsize=(width, height), layout="constrained")


def _bar_height(n: int, per_row: float = 0.22, base: float = 0.9) -> float:
    return max(1.6, base + per_row * n)


def _barh_into(
    ax, labels: Sequence[str], values: Sequence[float], color: str, fmt: str, rows: int = 0
) -> None:
    """Bars from the top down; `rows` slots in all (small multiples share one bar thickness)."""
    rows = max(rows, len(labels))
    y = [rows - 1 - i for i in range(len(labels))]  # the largest on top
    ax.barh(y, values, color=color, height=0.72)
    ax.set_yticks(y, [short(s) for s in labels])
    ax.tick_params(axis="y", length=0)
    top = max([v for v in values if v is not None and math.isfinite(v)] or [1.0])
    ax.set_xlim(0, top * 1.18 if top > 0 else 1)
    for yi, v in zip(y, values, strict=True):
        ax.text(v, yi, " " + fmt.format(v), va="center", ha="left", fontsize=8, color="#333")
    ax.set_ylim(-0.6, rows - 0.4)


def barh(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    xlabel: str,
    title: str = "",
    color: str = AI,
    fmt: str = "{:.1f}%",
    width: float = 7.0,
) -> str:
    with matplotlib.rc_context(RC):
        fig = _figure(width, _bar_height(len(labels)))
        ax = fig.add_subplot()
        _barh_into(ax, labels, values, color, fmt)
        ax.set_xlabel(xlabel)
        if title:
            ax.set_title(title, loc="left")
        return to_svg(fig)


def barh_panels(
    panels: Sequence[tuple[str, Sequence[str], Sequence[float], str]],
    *,
    xlabel: str,
    fmt: str = "{:.1f}%",
    ncols: int = 2,
    col_width: float = 4.6,
) -> str:
    """Small multiples of horizontal bar charts: (title, labels, values, colour) per panel."""
    n = len(panels)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    per = max(len(p[1]) for p in panels)
    with matplotlib.rc_context(RC):
        fig = _figure(col_width * ncols, nrows * (_bar_height(per, base=0.8) + 0.25))
        # One subfigure per panel, its title over the whole panel (labels included): an axes
        # title starts where the bars do and would run off the right edge of the figure.
        subs = fig.subfigures(nrows, ncols, squeeze=False)
        for i, sub in enumerate(subs.flat):
            if i >= n:
                continue
            title, labels, values, color = panels[i]
            ax = sub.add_subplot()
            _barh_into(ax, labels, values, color, fmt, rows=per)
            ax.set_xlabel(xlabel)
            sub.suptitle(
                short(title, int(col_width * 10)),
                x=0.02,
                ha="left",
                fontsize=RC["axes.titlesize"],
                fontweight="bold",
            )
        return to_svg(fig)


def _log_sample(n: int, points: int = 400) -> list[int]:
    """Ranks 1..n thinned to about `points`, evenly on a log axis: the curve looks the same and
    the SVG stays small however many values there are."""
    if n <= points:
        return list(range(1, n + 1))
    step = math.log(n) / points
    return sorted({min(n, round(math.exp(i * step))) for i in range(points + 1)} | {1, n})


def rank_frequency(series: Sequence[tuple[str, Sequence[float], str]], *, cutoff: float) -> str:
    """Log-log rank-frequency plot of value shares, with the long-tail cut-off marked."""
    with matplotlib.rc_context(RC):
        fig = _figure(7.0, 3.4)
        ax = fig.add_subplot()
        for name, pcts, color in series:
            pos = [p for p in pcts if p and p > 0]
            if pos:
                ranks = _log_sample(len(pos))
                ax.plot(ranks, [pos[r - 1] for r in ranks], color=color, lw=1.6, label=name)
        ax.axhline(cutoff, color=GREY, lw=0.9, ls="--")
        ax.text(1, cutoff, f" {cutoff:g}% of conversations", va="bottom", fontsize=8, color="#555")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="major", axis="both")
        ax.set_xlabel("rank of the value (1 = most frequent)")
        ax.set_ylabel("% of conversations")
        if series:
            ax.legend(frameon=False, loc="upper right")
        return to_svg(fig)


def tree_bars(items: Sequence[tuple[str, int, float]], *, xlabel: str) -> str:
    """An indented tree drawn as bars: (name, depth, share) in display order."""
    # non-breaking spaces: SVG collapses ordinary leading white space
    labels = [("\u00a0" * 4 * d) + short(name, 40 - 4 * d) for name, d, _ in items]
    values = [v for _, _, v in items]
    colors = [PALETTE[0] if d == 0 else "#8fb0d4" if d == 1 else "#c3d4e8" for _, d, _ in items]
    with matplotlib.rc_context(RC):
        fig = _figure(7.5, _bar_height(len(items)))
        ax = fig.add_subplot()
        y = list(range(len(items)))[::-1]
        ax.barh(y, values, color=colors, height=0.72)
        ax.set_yticks(y, labels)
        for tick, (_, d, _) in zip(ax.get_yticklabels(), items, strict=True):
            tick.set_horizontalalignment("left")
            if d == 0:
                tick.set_fontweight("bold")
        # Left-aligned labels need a pad as wide as the widest label: measure it, in points.
        fig.draw_without_rendering()
        widest = max((t.get_window_extent().width for t in ax.get_yticklabels()), default=0.0)
        ax.tick_params(axis="y", length=0, pad=widest * 72 / fig.dpi + 4)
        top = max(values or [1.0])
        ax.set_xlim(0, top * 1.18)
        for yi, v in zip(y, values, strict=True):
            ax.text(v, yi, f" {v:.1f}%", va="center", fontsize=8, color="#333")
        ax.set_ylim(-0.6, len(items) - 0.4)
        ax.set_xlabel(xlabel)
        return to_svg(fig)


def grouped_barh(
    categories: Sequence[str],
    groups: Sequence[tuple[str, Sequence[float], str]],
    *,
    xlabel: str,
) -> str:
    """Categories on the y axis, one bar per group inside each: (group name, values, colour)."""
    k = len(groups)
    h = 0.8 / max(k, 1)
    with matplotlib.rc_context(RC):
        fig = _figure(7.0, _bar_height(len(categories) * max(k, 1), per_row=0.17))
        ax = fig.add_subplot()
        base = list(range(len(categories)))[::-1]
        top = 0.0
        for gi, (name, vals, color) in enumerate(groups):
            ys = [b + 0.4 - h * (gi + 0.5) for b in base]
            ax.barh(ys, vals, height=h * 0.92, color=color, label=name)
            for yy, v in zip(ys, vals, strict=True):
                ax.text(v, yy, f" {v:.1f}%", va="center", fontsize=7, color="#333")
            top = max([top, *vals])
        ax.set_yticks(base, [short(c) for c in categories])
        ax.tick_params(axis="y", length=0)
        ax.set_xlim(0, top * 1.2 if top > 0 else 1)
        ax.set_xlabel(xlabel)
        fig.legend(loc="outside lower center", ncols=k, frameon=False)
        return to_svg(fig)


def stacked_shares(
    rows: Sequence[str],
    categories: Sequence[str],
    shares: Sequence[Sequence[float]],
    *,
    xlabel: str = "% of the model's conversations",
    label_width: int = 28,
) -> str:
    """One 100% bar per row (a model), split by category (response types), legend below."""
    with matplotlib.rc_context(RC):
        fig = _figure(7.5, max(1.8, 1.2 + 0.32 * len(rows)))
        ax = fig.add_subplot()
        y = list(range(len(rows)))[::-1]
        left = [0.0] * len(rows)
        for ci, cat in enumerate(categories):
            vals = [s[ci] for s in shares]
            color = RESPONSE_COLORS[ci % len(RESPONSE_COLORS)]
            ax.barh(y, vals, left=left, color=color, height=0.7, label=cat)
            for yi, lft, v in zip(y, left, vals, strict=True):
                if v >= 6:  # label only segments wide enough to hold it
                    ax.text(lft + v / 2, yi, f"{v:.0f}", ha="center", va="center", fontsize=7)
            left = [a + b for a, b in zip(left, vals, strict=True)]
        ax.set_yticks(y, [short(r, label_width) for r in rows])
        ax.tick_params(axis="y", length=0)
        ax.set_xlim(0, 100)
        ax.set_xlabel(xlabel)
        fig.legend(loc="outside lower center", ncols=4, frameon=False, fontsize=8)
        return to_svg(fig)


def heatmap(
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    values: Sequence[Sequence[float | None]],
    significant: Sequence[Sequence[bool]],
    *,
    xlabel: str,
    ylabel: str,
    threshold: float,
) -> str:
    """Adjusted residuals, red above and blue below expectation. The rarer kind of cell is
    marked: * on significant ones, or "ns" on the others where most are significant (at scale,
    nearly every cell is, and a star in each says nothing)."""
    import numpy as np

    m = np.array([[np.nan if v is None else v for v in r] for r in values], dtype=float)
    finite = np.abs(m[np.isfinite(m)])
    lim = max(float(finite.max()) if finite.size else 1.0, threshold, 1.0)
    with matplotlib.rc_context(RC):
        fig = _figure(
            max(5.0, 2.6 + 0.42 * len(col_labels)), max(2.5, 1.6 + 0.26 * len(row_labels))
        )
        ax = fig.add_subplot()
        ax.grid(False)
        cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#f3f3f3")
        im = ax.imshow(
            np.ma.masked_invalid(m),
            cmap=cmap,
            # at scale residuals run into the hundreds: a symmetric log scale keeps the
            # cells near the threshold distinguishable from zero
            norm=SymLogNorm(linthresh=max(threshold, 1.0), vmin=-lim, vmax=lim, base=10)
            if lim > 20 * max(threshold, 1.0)
            else TwoSlopeNorm(vcenter=0, vmin=-lim, vmax=lim),
            aspect="auto",
        )
        ax.set_xticks(range(len(col_labels)), [short(c, 24) for c in col_labels])
        ax.set_yticks(range(len(row_labels)), [short(r, 32) for r in row_labels])
        ax.tick_params(axis="x", labelrotation=40, length=0)
        for lab in ax.get_xticklabels():
            lab.set_horizontalalignment("right")
        ax.tick_params(axis="y", length=0)
        shown = [
            (i, j, bool(significant[i][j]))
            for i in range(m.shape[0])
            for j in range(m.shape[1])
            if np.isfinite(m[i, j])
        ]
        mark_ns = sum(sig for *_, sig in shown) > len(shown) / 2
        for i, j, sig in shown:
            if mark_ns and not sig:
                ax.text(j, i, "ns", ha="center", va="center", fontsize=6.5, color="#555")
            elif not mark_ns and sig:
                ax.text(j, i, "*", ha="center", va="center", fontsize=9, color="#111")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        for s in ax.spines.values():
            s.set_visible(False)
        bar = fig.colorbar(im, ax=ax, shrink=0.8)
        if isinstance(im.norm, SymLogNorm):  # ticks at 0, the threshold and powers of ten
            t = max(threshold, 1.0)
            pos = [t] + [10.0**k for k in range(1, 7) if 3 * t <= 10.0**k <= lim]
            bar.set_ticks([-p for p in pos[::-1]] + [0.0] + pos, labels=None)
            bar.ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick_label))
            bar.ax.minorticks_off()
        note = f"ns: |r| <= {threshold:.2f}" if mark_ns else f"*: |r| > {threshold:.2f}"
        bar.set_label(f"adjusted residual ({note})")
        return to_svg(fig)


def _tick_label(x: float, _pos: int) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def diverging_barh(
    labels: Sequence[str], diffs: Sequence[float], significant: Sequence[bool], *, xlabel: str
) -> str:
    """Differences around zero; significant ones in colour, the rest grey."""
    colors = [
        (AI if d >= 0 else HUMAN) if s else "#c9c9c9"
        for d, s in zip(diffs, significant, strict=True)
    ]
    with matplotlib.rc_context(RC):
        fig = _figure(7.5, _bar_height(len(labels)))
        ax = fig.add_subplot()
        y = list(range(len(labels)))[::-1]
        ax.barh(y, diffs, color=colors, height=0.72)
        ax.axvline(0, color="#555", lw=0.8)
        ax.set_yticks(y, [short(s, 52) for s in labels])
        ax.tick_params(axis="y", length=0)
        lim = max([abs(d) for d in diffs] or [1.0]) * 1.15
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.set_xlabel(xlabel)
        return to_svg(fig)


def dotplot(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    xlabel: str,
) -> str:
    """One row per label, one coloured dot per series (a model): profiles side by side."""
    with matplotlib.rc_context(RC):
        fig = _figure(7.0, _bar_height(len(labels), per_row=0.26) + 0.4)
        ax = fig.add_subplot()
        y = list(range(len(labels)))[::-1]
        ax.grid(True, axis="y", color="#f0f0f0")
        markers = "os^Dv<>P"
        k = len(series)
        for si, (name, vals) in enumerate(series):
            dodge = (si - (k - 1) / 2) * min(0.18, 0.7 / max(k, 1))  # equal values stay visible
            pts = [(v, yi + dodge) for v, yi in zip(vals, y, strict=True) if v is not None]
            if pts:
                ax.scatter(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    s=26,
                    color=PALETTE[si % len(PALETTE)],
                    marker=markers[si % len(markers)],
                    label=short(name, 28),
                    zorder=3,
                )
        ax.set_yticks(y, [short(s) for s in labels])
        ax.tick_params(axis="y", length=0)
        ax.set_xlim(left=0)
        ax.set_xlabel(xlabel)
        fig.legend(loc="outside lower center", ncols=min(4, max(1, len(series))), frameon=False)
        return to_svg(fig)


def forest(
    labels: Sequence[str],
    estimates: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    colors: Sequence[str],
    *,
    xlabel: str,
) -> str:
    """Ratios with their intervals on a log axis, one row per label, a line at 1 (no
    difference). Non-positive or missing bounds are left out (the point still shows)."""
    with matplotlib.rc_context(RC):
        fig = _figure(7.5, _bar_height(len(labels), per_row=0.26))
        ax = fig.add_subplot()
        y = list(range(len(labels)))[::-1]

        def usable(v: float | None) -> float | None:
            return v if v is not None and math.isfinite(v) and v > 0 else None

        pos = [u for v in [*estimates, *lows, *highs] if (u := usable(v)) is not None]
        lo, hi = (min(pos), max(pos)) if pos else (0.5, 2.0)
        for yi, e, a, b, c in zip(y, estimates, lows, highs, colors, strict=True):
            ua, ub, ue = usable(a), usable(b), usable(e)
            if ua is not None and ub is not None:
                ax.plot([ua, ub], [yi, yi], color=c, lw=1.6, solid_capstyle="butt")
            if ue is not None:
                ax.scatter([ue], [yi], color=c, s=22, zorder=3)
        ax.axvline(1.0, color="#555", lw=0.8)
        ax.set_xscale("log")
        left, right = min(lo, 1.0) / 1.3, max(hi, 1.0) * 1.3
        ax.set_xlim(left, right)
        # plain numbers (0.5, 1, 2) rather than powers of ten: ratios read better so
        steps = [m * 10.0**k for k in range(-4, 5) for m in (1, 2, 5)]
        ticks = [t for t in steps if left <= t <= right]
        if len(ticks) > 9:
            ticks = [t for t in ticks if f"{t:g}".lstrip("0.").startswith("1")]
        ax.minorticks_off()
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_yticks(y, [short(s, 52) for s in labels])
        ax.tick_params(axis="y", length=0)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        ax.set_xlabel(xlabel)
        return to_svg(fig)
