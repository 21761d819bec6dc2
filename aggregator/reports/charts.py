"""Inline SVG charts drawn server-side (no scripts, fonts or CDN): bars with a target line, trend lines."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lxml import etree
from markupsafe import Markup

from aggregator.reports.labels import STATUS_COLOURS, fmt_value, t

SVG_NS = "http://www.w3.org/2000/svg"
TEXT_COLOUR = "#1f2933"
GRID_COLOUR = "#d9dee3"
TARGET_COLOUR = "#111827"
# a white outline behind value labels keeps them readable where they cross a grid or target line
HALO = {"stroke": "#fff", "stroke_width": 3, "paint_order": "stroke", "stroke_linejoin": "round"}


@dataclass
class Bar:
    label: str
    value: float | None
    status: str  # a traffic-light status (labels.STATUSES)


def _svg(width: int, height: int, title: str) -> etree._Element:
    root = etree.Element(f"{{{SVG_NS}}}svg", nsmap={None: SVG_NS})
    root.set("width", str(width))
    root.set("height", str(height))
    root.set("viewBox", f"0 0 {width} {height}")
    root.set("role", "img")
    root.set("class", "chart")
    etree.SubElement(root, f"{{{SVG_NS}}}title").text = title
    return root


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: object) -> etree._Element:
    el = etree.SubElement(parent, f"{{{SVG_NS}}}{tag}")
    for k, v in attrs.items():
        el.set(k.rstrip("_").replace("_", "-"), str(v))
    if text is not None:
        el.text = text
    return el


def _markup(root: etree._Element) -> Markup:
    return Markup(etree.tostring(root, encoding="unicode"))


def _nice_max(values: list[float], unit: str) -> float:
    """A round axis maximum (1, 2, 2.5 or 5 × a power of ten) a little above the largest value."""
    top = max(values, default=0.0) * 1.1
    if unit == "percent" and top > 55:
        return 100.0
    if top <= 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(top))
    for step in (1, 2, 2.5, 5):
        if step * mag >= top:
            return step * mag
    return 10 * mag


def _short(x: float, lang: str) -> str:
    s = f"{x:g}"
    return s.replace(".", ",") if lang == "vi" else s


def bar_chart(
    bars: list[Bar],
    *,
    target: float | None,
    unit: str,
    lang: str,
    title: str,
    width: int = 680,
    label_width: int = 190,
    text_width: int = 150,
) -> Markup:
    """Horizontal bars coloured by status, the value and status as text, and a dashed target line."""
    row_h, gap, top, bottom = 20, 7, 26, 24
    height = top + len(bars) * (row_h + gap) + bottom
    root = _svg(width, height, title)
    plot_w = width - label_width - text_width  # the rest holds the value and status text
    vmax = _nice_max(
        [b.value for b in bars if b.value is not None] + ([target] if target is not None else []), unit
    )
    x0 = label_width

    def x(v: float) -> float:
        return x0 + plot_w * max(0.0, min(v, vmax)) / vmax

    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        gx = x0 + plot_w * frac
        _el(
            root, "line", x1=gx, y1=top - 4, x2=gx, y2=height - bottom + 2, stroke=GRID_COLOUR, stroke_width=1
        )
        _el(
            root,
            "text",
            _short(vmax * frac, lang),
            x=gx,
            y=height - 6,
            font_size=10,
            fill="#52606d",
            text_anchor="middle",
        )
    labels: list[tuple[str, float, float]] = []
    for i, b in enumerate(bars):
        y = top + i * (row_h + gap)
        _el(
            root,
            "text",
            b.label,
            x=x0 - 8,
            y=y + row_h * 0.7,
            font_size=12,
            fill=TEXT_COLOUR,
            text_anchor="end",
        )
        colour = STATUS_COLOURS.get(b.status, "#6b7280")
        status_text = t(f"status_{b.status}", lang)
        if b.value is None:
            _el(root, "rect", x=x0, y=y, width=plot_w, height=row_h, fill="url(#hatch)", stroke=GRID_COLOUR)
            _el(
                root,
                "text",
                status_text,
                x=x0 + 6,
                y=y + row_h * 0.7,
                font_size=11,
                fill="#52606d",
                font_style="italic",
            )
            continue
        w = max(1.5, x(b.value) - x0)
        _el(
            root,
            "rect",
            x=x0,
            y=y,
            width=round(w, 1),
            height=row_h,
            fill=colour,
            rx=2,
            **{"class": f"bar status-{b.status}"},
        )
        labels.append((f"{fmt_value(b.value, unit, lang)} · {status_text}", x0 + w + 6, y + row_h * 0.7))
    if target is not None:
        tx = x(target)
        _el(
            root,
            "line",
            x1=tx,
            y1=top - 8,
            x2=tx,
            y2=height - bottom + 2,
            stroke=TARGET_COLOUR,
            stroke_width=2,
            stroke_dasharray="5 3",
            **{"class": "target-line"},
        )
        _el(
            root,
            "text",
            f"{t('target', lang)} {fmt_value(target, unit, lang)}",
            x=tx,
            y=top - 12,
            font_size=10.5,
            fill=TARGET_COLOUR,
            text_anchor="middle",
            font_weight="bold",
        )
    for text, lx, ly in labels:  # on top of bars and the target line
        _el(root, "text", text, x=lx, y=ly, font_size=11, fill=TEXT_COLOUR, **{"class": "value"}, **HALO)
    defs = etree.Element(f"{{{SVG_NS}}}defs")
    pat = _el(
        defs,
        "pattern",
        id="hatch",
        width=6,
        height=6,
        patternUnits="userSpaceOnUse",
        patternTransform="rotate(45)",
    )
    _el(pat, "line", x1=0, y1=0, x2=0, y2=6, stroke="#c3c9d0", stroke_width=2)
    root.insert(1, defs)
    return _markup(root)


def line_chart(
    points: list[tuple[str, float | None]],
    *,
    target: float | None,
    unit: str,
    lang: str,
    title: str,
    width: int = 330,
    height: int = 150,
) -> Markup:
    """A small trend chart: one point per period (gaps where there is no data) and a dashed target line."""
    left, right, top, bottom = 44, 22, 24, 26
    root = _svg(width, height, title)
    values = [v for _, v in points if v is not None]
    vmax = _nice_max(values + ([target] if target is not None else []), unit)
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(points) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + plot_w * i / n, top + plot_h * (1 - max(0.0, min(v, vmax)) / vmax)

    for frac in (0.0, 0.5, 1.0):
        gy = top + plot_h * (1 - frac)
        _el(root, "line", x1=left, y1=gy, x2=width - right, y2=gy, stroke=GRID_COLOUR, stroke_width=1)
        _el(
            root,
            "text",
            _short(vmax * frac, lang),
            x=left - 5,
            y=gy + 3.5,
            font_size=9.5,
            fill="#52606d",
            text_anchor="end",
        )
    if target is not None:
        ty = xy(0, target)[1]
        _el(
            root,
            "line",
            x1=left,
            y1=ty,
            x2=width - right,
            y2=ty,
            stroke=TARGET_COLOUR,
            stroke_width=1.5,
            stroke_dasharray="5 3",
            **{"class": "target-line"},
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, (_, v) in enumerate(points):
        if v is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        px, py = xy(i, v)
        segment.append(f"{px:.1f},{py:.1f}")
    if segment:
        segments.append(segment)
    for seg in segments:
        _el(root, "polyline", points=" ".join(seg), fill="none", stroke="#1f5f99", stroke_width=2.2)
    for i, (label, v) in enumerate(points):
        px = left + plot_w * i / n
        _el(root, "text", label, x=px, y=height - 8, font_size=9.5, fill="#52606d", text_anchor="middle")
        if v is None:
            _el(
                root,
                "text",
                "—",
                x=px,
                y=top + plot_h - 4,
                font_size=10,
                fill="#9aa5b1",
                text_anchor="middle",
            )
            continue
        px, py = xy(i, v)
        _el(root, "circle", cx=round(px, 1), cy=round(py, 1), r=3.2, fill="#1f5f99", **{"class": "point"})
        _el(
            root,
            "text",
            fmt_value(v, unit, lang),
            x=px,
            y=py - 7,
            font_size=9.5,
            fill=TEXT_COLOUR,
            text_anchor="middle",
            **HALO,
        )
    return _markup(root)
