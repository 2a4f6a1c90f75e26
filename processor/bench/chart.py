"""A tiny pure-Python bar chart written as PNG, for ``scripts/bench.py`` (no matplotlib: it is not a dependency).

:func:`bar_panels` draws one panel per metric, each with a bar per contender, the value above every bar and an
optional dashed reference line (the benchmark's floor); :func:`png` encodes an RGB canvas (zlib + CRC from the
standard library). Text uses the built-in 5x7 bitmap font below (upper case, digits and a little punctuation).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

RGB = tuple[int, int, int]

# 5x7 glyphs, one string of 7 rows of 5 pixels each ('#' = ink). Lower-case text is drawn in upper case,
# except "×" (a small x) and "µ".
_FONT_ROWS = {
    "A": ".###.#...##...#######...##...##...#", "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.", "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####", "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####", "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.", "J": "..###...#....#....#....##..#..##...",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#", "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##.#.##...##...##...#", "N": "#...##...###..##.#.##..###...##...#",
    "O": ".###.#...##...##...##...##...#.###.", "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#", "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.", "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.", "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#.#.#.#.", "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..", "Z": "#####....#...#...#...#...#....#####",
    "0": ".###.#...##..###.#.###..##...#.###.", "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####", "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.", "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.", "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.", "9": ".###.#...##...#.####....#...#..##..",
    " ": "." * 35, ".": "." * 25 + ".##...##..", ",": "." * 20 + ".##....#...#...",
    "/": ".........#...#...#...#...#.........", "(": "...#...#...#....#....#.....#.....#.",
    ")": ".#.....#.....#....#....#...#...#...", "%": "##...##..#...#...#...#...#..##...##",
    "-": "...............#####...............", ":": ".......##..##..........##..##......",
    "=": "..........#####.....#####..........", "+": "......#....#..#####..#....#........",
    "<": "...#...#...#...#.....#.....#.....#.", ">": ".#.....#.....#.....#...#...#...#...",
    "_": "." * 30 + "#####", "#": ".#.#..#.#.#####.#.#.#####.#.#..#.#.",
    "×": "..........#...#.#.#...#...#.#.#...#", "µ": ".....#..#.#..#.#..#.#..#.####.#....",
    "'": "..#....#...#.......................", "!": "..#....#....#....#....#.........#..",
    "?": ".###.#...#....#...#...#.........#..",
    ";": ".......##..##..........##...#...#..", "~": "..........##.##.#.##...............",
    "[": ".###..#....#....#....#....#....###.", "]": ".###....#....#....#....#....#..###.",
    '"': ".#.#..#.#..........................", "*": "......#.#.#.#.#.###.#.#.#.#........",
}
GLYPH_W, GLYPH_H, ADVANCE = 5, 7, 6

WHITE: RGB = (255, 255, 255)
BLACK: RGB = (30, 30, 30)
GREY: RGB = (150, 150, 150)
LIGHT: RGB = (225, 225, 225)
PALETTE: tuple[RGB, ...] = ((46, 125, 50), (198, 40, 40), (239, 108, 0), (21, 101, 192), (106, 27, 154))


class Canvas:
    """An RGB image in a bytearray, with rectangles, dashed lines and bitmap text."""

    def __init__(self, width: int, height: int, background: RGB = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: RGB) -> None:
        """Fill the rectangle [x0, x1) x [y0, y1), clipped to the canvas."""
        x0, x1 = max(0, min(x0, x1)), min(self.width, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height, max(y0, y1))
        if x0 >= x1:
            return
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            start = (y * self.width + x0) * 3
            self.pixels[start:start + len(row)] = row

    def hline(self, x0: int, x1: int, y: int, color: RGB, dash: int = 0, width: int = 1) -> None:
        if not dash:
            self.rect(x0, y, x1, y + width, color)
            return
        for x in range(x0, x1, 2 * dash):
            self.rect(x, y, min(x + dash, x1), y + width, color)

    def text(self, x: int, y: int, text: str, color: RGB = BLACK, scale: int = 2) -> None:
        """Draw ``text`` with its top-left corner at (x, y)."""
        for i, char in enumerate(text):
            rows = _FONT_ROWS.get(char) or _FONT_ROWS.get(char.upper()) or _FONT_ROWS["?"]
            gx = x + i * ADVANCE * scale
            for k, ink in enumerate(rows):
                if ink == "#":
                    px, py = gx + (k % GLYPH_W) * scale, y + (k // GLYPH_W) * scale
                    self.rect(px, py, px + scale, py + scale, color)

    @staticmethod
    def text_width(text: str, scale: int = 2) -> int:
        return max(0, len(text) * ADVANCE * scale - scale)

    def centered(self, cx: int, y: int, text: str, color: RGB = BLACK, scale: int = 2) -> None:
        self.text(cx - self.text_width(text, scale) // 2, y, text, color, scale)


def png(canvas: Canvas) -> bytes:
    """Encode the canvas as an 8-bit RGB PNG (filter 0 on every row)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    stride = canvas.width * 3
    raw = b"".join(b"\x00" + bytes(canvas.pixels[y * stride:(y + 1) * stride]) for y in range(canvas.height))
    header = struct.pack(">IIBBBBB", canvas.width, canvas.height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


@dataclass
class Panel:
    """One metric: a value per contender (None = not measured), and optional reference lines (label, value)."""

    title: str
    values: list[float | None]
    fmt: str = "{:.2f}"
    references: list[tuple[str, float]] = field(default_factory=list)


def _nice_top(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    while magnitude > value:
        magnitude /= 10
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= value * 1.12:
            return step * magnitude
    return 10 * magnitude


def bar_panels(title: str, labels: list[str], panels: list[Panel], footer: list[str] | None = None,
               columns: int = 2, panel_w: int = 620, panel_h: int = 400) -> bytes:
    """A grid of bar panels sharing the contender ``labels`` (one color each); returns PNG bytes."""
    footer = footer or []
    rows = (len(panels) + columns - 1) // columns
    top, line_h = 60, 22
    width = columns * panel_w
    height = top + rows * panel_h + 20 + len(footer) * line_h + 10
    canvas = Canvas(width, height)
    canvas.text(20, 18, title, BLACK, 3)
    for index, panel in enumerate(panels):
        ox = (index % columns) * panel_w
        oy = top + (index // columns) * panel_h
        _draw_panel(canvas, panel, labels, ox, oy, panel_w, panel_h)
    for k, line in enumerate(footer):
        canvas.text(20, top + rows * panel_h + 15 + k * line_h, line, BLACK, 2)
    return png(canvas)


def _draw_panel(canvas: Canvas, panel: Panel, labels: list[str], ox: int, oy: int, w: int, h: int) -> None:
    canvas.centered(ox + w // 2, oy + 8, panel.title, BLACK, 2)
    left, right, plot_top, plot_bottom = ox + 40, ox + w - 30, oy + 60, oy + h - 70
    measured = [v for v in panel.values if v is not None] + [v for _, v in panel.references]
    ymax = _nice_top(max(measured, default=1.0))
    for k in range(5):   # grid
        y = plot_bottom - (plot_bottom - plot_top) * k // 4
        canvas.hline(left, right, y, LIGHT)
    canvas.hline(left, right, plot_bottom, GREY, width=2)
    slot = (right - left) // max(1, len(labels))
    bar_w = min(110, slot * 3 // 5)
    for i, (label, value) in enumerate(zip(labels, panel.values)):
        cx = left + slot * i + slot // 2
        color = PALETTE[i % len(PALETTE)]
        if value is None:
            canvas.centered(cx, plot_bottom - 24, "n/a", GREY, 2)
        else:
            bar_h = int(round((plot_bottom - plot_top) * value / ymax))
            canvas.rect(cx - bar_w // 2, plot_bottom - bar_h, cx + bar_w // 2, plot_bottom, color)
            canvas.centered(cx, plot_bottom - bar_h - 20, panel.fmt.format(value), BLACK, 2)
        for k, part in enumerate(label.split("\n")):
            canvas.centered(cx, plot_bottom + 10 + k * 20, part, color, 2)
    for k, (label, value) in enumerate(panel.references):   # dashed line, explained under the title
        y = plot_bottom - int(round((plot_bottom - plot_top) * value / ymax))
        canvas.hline(left, right, y, BLACK, dash=8, width=2)
        legend = f"{label} {panel.fmt.format(value)}"
        lx = ox + w // 2 - (Canvas.text_width(legend) + 40) // 2
        canvas.hline(lx, lx + 30, oy + 38 + k * 20, BLACK, dash=6, width=2)
        canvas.text(lx + 40, oy + 31 + k * 20, legend, BLACK, 2)


def write_chart(path: str | Path, title: str, labels: list[str], panels: list[Panel],
                footer: list[str] | None = None) -> Path:
    target = Path(path)
    target.write_bytes(bar_panels(title, labels, panels, footer))
    return target
