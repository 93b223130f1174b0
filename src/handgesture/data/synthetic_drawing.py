"""Drawing synthetic frames: one glyph per gesture (colour, fingers, ring), hands, backgrounds, placement."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from handgesture.labels import HAGRID_TARGETS, HAGRID_V2_TARGETS


@dataclass(frozen=True)
class Glyph:
    colour: tuple[int, int, int]
    fingers: tuple[float, ...]  # finger angles in degrees, 0 = up, 90 = towards the image's right
    ring: bool = False  # the "ok" circle


# One glyph per HaGRID gesture, in HAGRID_TARGETS order; other target names reuse them by position.
# Colours sit on a {0, 128, 255} RGB grid (>= 127 apart, away from the grey background).
GLYPHS = [
    Glyph((255, 0, 0), (-70, 55)),  # call
    Glyph((0, 128, 0), (180,)),  # dislike
    Glyph((255, 255, 0), ()),  # fist
    Glyph((0, 0, 255), (-24, -8, 8, 24)),  # four
    Glyph((255, 128, 0), (0,)),  # like
    Glyph((128, 0, 255), (90,)),  # mute
    Glyph((0, 255, 255), (10, 30, 50), ring=True),  # ok
    Glyph((255, 0, 255), (-10,)),  # one
    Glyph((128, 255, 0), (-44, -22, 0, 22, 44)),  # palm
    Glyph((255, 128, 255), (-22, 22)),  # peace
    Glyph((0, 128, 128), (-40, 40)),  # rock
    Glyph((128, 128, 255), (-14, -7, 0, 7, 14)),  # stop
    Glyph((128, 0, 0), (166, 173, 180, 187, 194)),  # stop_inverted
    Glyph((255, 255, 128), (-28, 0, 28)),  # three
    Glyph((0, 255, 0), (-5, 5)),  # two_up
    Glyph((0, 128, 255), (175, 185)),  # two_up_inverted
    Glyph((128, 128, 0), (-40, -12, 16)),  # three2
    Glyph((255, 0, 128), (158, 202)),  # peace_inverted
]
NO_GESTURE_COLOUR = (0, 0, 128)
THUMB_ANGLE = -75
V2_ONLY = [name for name in HAGRID_V2_TARGETS if name not in HAGRID_TARGETS]


def glyph_for(name: str, position: int) -> Glyph:
    if name in HAGRID_TARGETS:
        return GLYPHS[HAGRID_TARGETS.index(name)]
    if name in V2_ONLY:  # a ring with another glyph's colour and fingers: unlike any v1 glyph and each other
        k = V2_ONLY.index(name)
        return Glyph(GLYPHS[k].colour, GLYPHS[(7 * k + 3) % len(GLYPHS)].fingers, ring=True)
    return GLYPHS[position % len(GLYPHS)]


def background(rng: random.Random, nprng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    width, height = size
    grey = rng.uniform(60, 190)
    start, end = (np.array([grey + rng.uniform(-30, 30) for _ in range(3)]) for _ in range(2))
    ramp = np.linspace(0.0, 1.0, width if rng.random() < 0.5 else height, dtype=np.float32)
    ramp = ramp[None, :, None] if len(ramp) == width else ramp[:, None, None]
    start, end = start.astype(np.float32), end.astype(np.float32)
    pixels = start + (end - start) * ramp + nprng.integers(-14, 15, (height, width, 3), dtype=np.int16)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 4)):  # desaturated clutter, so the hand is not the only shape in view
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        box = [x0, y0, x0 + rng.uniform(10, width / 3), y0 + rng.uniform(10, height / 3)]
        tone = int(rng.uniform(40, 220))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=(tone, tone, tone))
    return image


def jitter(rng: random.Random, colour: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in colour)


def draw_hand(draw, box, glyph: Glyph | None, hand: str, colour) -> None:
    """Draw a hand in pixel box (x0, y0, w, h); glyph None draws a no_gesture fist."""
    x0, y0, w, h = box
    mirror = -1 if hand == "left" else 1
    fingers = glyph.fingers if glyph else ()
    down = bool(fingers) and all(abs(a) > 90 for a in fingers)
    side = bool(fingers) and all(abs(a) == 90 for a in fingers)
    # The palm sits off-centre, away from the thumb, which sticks out on the hand's own side: a mirrored
    # crop tells left from right.
    cx = x0 + w * (0.5 - 0.15 * mirror if side else 0.5 + 0.1 * mirror)
    cy = y0 + h * (0.5 if side or not fingers else 0.35 if down else 0.65)
    rx, ry = w * (0.26 if fingers else 0.3), h * (0.2 if fingers else 0.26)
    thick = max(2, round(w * 0.13))
    strokes = [(a, h * 0.55, thick) for a in fingers] + [(THUMB_ANGLE, h * 0.45, round(thick * 1.3))]
    for angle, length, width in strokes:
        rad = math.radians(angle * mirror)
        tip = (cx + length * math.sin(rad), cy - length * math.cos(rad))
        tip = (min(max(tip[0], x0 + width / 2), x0 + w - width / 2), min(max(tip[1], y0), y0 + h))
        draw.line([(cx, cy), tip], fill=colour, width=width)
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
    if glyph and glyph.ring:
        r = h * 0.13
        ox, oy = cx + mirror * w * 0.05, cy - ry - r * 0.8
        draw.ellipse([ox - r, oy - r, ox + r, oy + r], outline=colour, width=max(2, thick // 2))


def place(rng: random.Random, frame: tuple[int, int], half: int, height_range) -> tuple[int, int, int, int]:
    """A pixel box (x, y, w, h) in one half of the frame (0 left, 1 right); sometimes touching an edge."""
    width, height = frame
    h = round(height * rng.uniform(*height_range))
    w = min(round(h * rng.uniform(0.7, 0.9)), width // 2)
    lo = half * width // 2
    x, y = rng.randint(lo, lo + width // 2 - w), rng.randint(0, height - h)
    edge = rng.random()
    if edge < 0.2:  # touch the outer side or the top/bottom edge of the frame
        x = 0 if half == 0 else width - w
    elif edge < 0.3:
        y = 0 if edge < 0.25 else height - h
    return x, y, w, h
