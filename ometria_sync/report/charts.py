"""Charts as inline SVG, drawn here in Python: no script, no font, no request.

Why SVG from the server rather than a JavaScript library: the report must open years from
now, offline, from an e-mail attachment or an artifact store. A page with no script has nothing
to go stale or be blocked (a Content-Security-Policy of ``default-src 'none'`` holds), it is a
few tens of KB instead of a vendored library's hundreds, and what it shows is in the markup,
so a test reads the drawn numbers back (each mark carries ``data-*`` attributes with its
figures, and a ``<title>`` a person sees on hover).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 760
PLOT_LEFT = 56
PLOT_RIGHT = 12


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}".rstrip("0")


def _attrs(data: dict[str, object]) -> str:
    return "".join(f' data-{k}="{escape(str(v))}"' for k, v in data.items())


class Axis:
    """A plot area: ``height`` px tall, values 0..``top`` up, slots 0..``slots`` across."""

    def __init__(self, *, slots: int, top: float, height: int, y0: int = 8) -> None:
        self.slots = max(1, slots)
        self.top = top if top > 0 else 1.0
        self.height = height
        self.y0 = y0
        self.width = WIDTH - PLOT_LEFT - PLOT_RIGHT

    def x(self, slot: float) -> float:
        return PLOT_LEFT + self.width * slot / self.slots

    def y(self, value: float) -> float:
        return self.y0 + self.height * (1 - min(value, self.top) / self.top)

    @property
    def bottom(self) -> float:
        return self.y0 + self.height

    def frame(self, unit: str) -> str:
        ticks = []
        for value in (0, self.top / 2, self.top):
            y = self.y(value)
            ticks.append(f'<line x1="{PLOT_LEFT}" x2="{WIDTH - PLOT_RIGHT}" y1="{y:.1f}" '
                         f'y2="{y:.1f}" class="grid"/><text x="{PLOT_LEFT - 4}" y="{y + 4:.1f}" '
                         f'class="tick" text-anchor="end">{_fmt(value)}</text>')
        mid = self.y0 + self.height / 2
        ticks.append(f'<text x="12" y="{mid:.1f}" class="unit" text-anchor="middle" '
                     f'transform="rotate(-90 12 {mid:.1f})">{escape(unit)}</text>')
        return "".join(ticks)

    def time_ticks(self, bucket_seconds: int) -> str:
        step = max(1, self.slots // 6)
        out = []
        for slot in range(0, self.slots + 1, step):
            out.append(f'<text x="{self.x(slot):.1f}" y="{self.bottom + 14:.1f}" class="tick" '
                       f'text-anchor="middle">{slot * bucket_seconds} s</text>')
        return "".join(out)

    def bars(self, values: Sequence[float], css: str, *, offset: float = 0.0,
             share: float = 1.0, label: str = "") -> str:
        """One bar per slot; ``offset``/``share`` place several series side by side."""
        slot_w = self.width / self.slots
        out = []
        for i, value in enumerate(values):
            if not value:
                continue
            x = self.x(i) + slot_w * offset
            y = self.y(value)
            out.append(f'<rect class="{css}" x="{x:.2f}" y="{y:.2f}" '
                       f'width="{max(slot_w * share - 0.5, 0.5):.2f}" '
                       f'height="{self.bottom - y:.2f}"><title>{escape(label)} {i}: '
                       f'{_fmt(value)}</title></rect>')
        return "".join(out)

    def level(self, value: float, css: str, label: str) -> str:
        y = self.y(value)
        return (f'<line class="{css}" x1="{PLOT_LEFT}" x2="{WIDTH - PLOT_RIGHT}" y1="{y:.1f}" '
                f'y2="{y:.1f}"/><text class="{css}-label" x="{WIDTH - PLOT_RIGHT}" '
                f'y="{y - 3:.1f}" text-anchor="end">{escape(label)}</text>')

    def polyline(self, values: Sequence[float], css: str) -> str:
        points = " ".join(f"{self.x(i + 0.5):.1f},{self.y(v):.1f}" for i, v in enumerate(values))
        return f'<polyline class="{css}" points="{points}"/>'


def svg(chart_id: str, height: int, body: str, data: dict[str, object], title: str) -> str:
    return (f'<svg id="{chart_id}" role="img" viewBox="0 0 {WIDTH} {height}" '
            f'width="{WIDTH}" height="{height}"{_attrs(data)}><title>{escape(title)}</title>'
            f"{body}</svg>")


def stacked_bar(rows: Sequence[tuple[str, Sequence[tuple[str, int]]]], chart_id: str,
                title: str) -> str:
    """One horizontal bar per row, split into named parts (drawn in CSS classes of their
    names); each part carries ``data-row``, ``data-part`` and ``data-count``."""
    row_h, gap = 22, 10
    height = max(1, len(rows)) * (row_h + gap) + 24
    largest = max((sum(c for _, c in parts) for _, parts in rows), default=0) or 1
    width = WIDTH - PLOT_LEFT - 100 - PLOT_RIGHT - 60  # room for the total
    out = []
    for n, (row, parts) in enumerate(rows):
        y = 8 + n * (row_h + gap)
        x = PLOT_LEFT + 100.0
        out.append(f'<text x="{x - 6}" y="{y + 15}" class="tick" text-anchor="end">'
                   f"{escape(row)}</text>")
        for part, count in parts:
            w = width * count / largest
            out.append(f'<rect class="part-{escape(part)}" x="{x:.2f}" y="{y}" '
                       f'width="{w:.2f}" height="{row_h}"'
                       f'{_attrs({"row": row, "part": part, "count": count})}>'
                       f"<title>{escape(row)}: {count} {escape(part)}</title></rect>")
            x += w
        total = sum(c for _, c in parts)
        out.append(f'<text x="{x + 4:.2f}" y="{y + 15}" class="tick">{total}</text>')
    return svg(chart_id, height, "".join(out), {"rows": len(rows)}, title)
