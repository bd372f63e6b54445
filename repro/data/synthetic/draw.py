"""Small deterministic PNGs for the synthetic world: coloured shapes, "danger" shapes (a black
cross over the shape) and typographic images (text in PIL's built-in default font).

PNG bytes depend only on the arguments (no metadata, fixed zlib level), so a dataset written
twice with one seed is byte-identical under one Pillow version.
"""

from __future__ import annotations

import io

COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
          "yellow": (230, 200, 30), "purple": (140, 60, 180), "orange": (240, 130, 30)}
SHAPES = ("circle", "square", "triangle", "diamond")
SIDE = 32
WHITE = (255, 255, 255)


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _draw_shape(draw, shape: str, color: tuple, cx: int, cy: int, r: int) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=color)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def shade(color: str, tint: tuple[int, int, int] = (0, 0, 0)) -> tuple[int, int, int]:
    """``color``'s RGB moved by ``tint`` (lighting varies; the colour name does not)."""
    return tuple(min(255, max(0, c + t)) for c, t in zip(COLORS[color], tint))


def shape_image(color: str, shape: str, dx: int = 0, dy: int = 0, danger: bool = False,
                radius: int = 9, tint: tuple[int, int, int] = (0, 0, 0)):
    """A ``color`` ``shape`` of half-width ``radius`` on white, shifted by (dx, dy), its colour
    moved by ``tint``; ``danger`` adds a black cross."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (SIDE, SIDE), WHITE)
    draw = ImageDraw.Draw(img)
    c = SIDE // 2
    _draw_shape(draw, shape, shade(color, tint), c + dx, c + dy, radius)
    if danger:
        draw.line((4, 4, SIDE - 5, SIDE - 5), fill=(0, 0, 0), width=3)
        draw.line((4, SIDE - 5, SIDE - 5, 4), fill=(0, 0, 0), width=3)
    return img


def text_image(lines: list[str], width: int = 128):
    """Black text on white, one line per 12 px, in PIL's default font (no font file needed)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    img = Image.new("RGB", (width, 12 * len(lines) + 6), WHITE)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((3, 3 + 12 * i), line, fill=(0, 0, 0), font=font)
    return img


def stacked(top, bottom):
    """MM-SafetyBench SD_TYPO: the picture above, the typographic phrase below it."""
    from PIL import Image

    width = max(top.width, bottom.width)
    img = Image.new("RGB", (width, top.height + bottom.height), WHITE)
    img.paste(top, ((width - top.width) // 2, 0))
    img.paste(bottom, (0, top.height))
    return img


def png_shape(color: str, shape: str, dx: int = 0, dy: int = 0, danger: bool = False,
              radius: int = 9, tint: tuple[int, int, int] = (0, 0, 0)) -> bytes:
    return _png(shape_image(color, shape, dx, dy, danger, radius, tint))


def png_text(lines: list[str], width: int = 128) -> bytes:
    return _png(text_image(lines, width))


def png_stacked(color: str, shape: str, phrase: str) -> bytes:
    return _png(stacked(shape_image(color, shape, danger=True), text_image([phrase])))
