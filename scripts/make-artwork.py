#!/usr/bin/env python3
"""Draws the default card artwork of templates/default/ (icon, logo, strip at 1x/2x/3x).

The images are original to loy and deliberately simple: a gold ring around a star on the
program's navy for the icon (it stands alone in notifications, so it must be opaque), the same
mark in white on transparency for the logo, and translucent white arcs for the strip so that
the pass's backgroundColor shows through and tints it in the program's colours.

Needs Pillow (`pip install Pillow`). Run from the repository root:

    python3 scripts/make-artwork.py

The output is committed; rerun only to change the design.
"""

import math
import os

from PIL import Image, ImageDraw

OUT = os.path.join(os.path.dirname(__file__), "..", "templates", "default")
NAVY = (28, 43, 74, 255)
GOLD = (244, 196, 98, 255)
WHITE = (255, 255, 255, 255)
SUPERSAMPLE = 4

# Apple's sizes in points for a storeCard (Wallet Developer Guide, "Pass Design and Creation").
ICON = (29, 29)
LOGO = (50, 50)  # within the 160 x 50 maximum: a square mark, the name comes from logoText
STRIP = (375, 123)


def star_points(cx, cy, outer, inner, n=5, rotation=-math.pi / 2):
    points = []
    for i in range(2 * n):
        r = outer if i % 2 == 0 else inner
        a = rotation + i * math.pi / n
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def mark(draw, cx, cy, radius, colour):
    """A ring with a five-pointed star inside: the loy mark."""
    ring = radius * 0.14
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=colour, width=max(1, round(ring)))
    draw.polygon(star_points(cx, cy, radius * 0.62, radius * 0.26), fill=colour)


def icon(scale):
    w, h = (ICON[0] * scale * SUPERSAMPLE, ICON[1] * scale * SUPERSAMPLE)
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, w - 1, h - 1), radius=w * 0.22, fill=NAVY)
    mark(d, w / 2, h / 2, w * 0.36, GOLD)
    return img


def logo(scale):
    w, h = (LOGO[0] * scale * SUPERSAMPLE, LOGO[1] * scale * SUPERSAMPLE)
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    mark(ImageDraw.Draw(img), w / 2, h / 2, h * 0.40, WHITE)
    return img


def strip(scale):
    w, h = (STRIP[0] * scale * SUPERSAMPLE, STRIP[1] * scale * SUPERSAMPLE)
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    # Concentric arcs rising from the lower right corner, fading outwards.
    cx, cy = w * 0.92, h * 1.25
    step = h * 0.22
    for i in range(9):
        r = step * (i + 2)
        alpha = max(10, 46 - i * 4)
        d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(255, 255, 255, alpha), width=round(h * 0.035))
    # A soft band along the bottom so the balance reads well on any colour.
    band = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    bd = ImageDraw.Draw(band)
    for y in range(h):
        a = round(28 * (y / h) ** 2)
        bd.line((0, y, w, y), fill=(0, 0, 0, a))
    img = Image.alpha_composite(img, band)
    img = Image.alpha_composite(img, layer)
    return img


def save(img, name, scale, base):
    size = (base[0] * scale, base[1] * scale)
    img = img.resize(size, Image.LANCZOS)
    suffix = "" if scale == 1 else f"@{scale}x"
    path = os.path.join(OUT, f"{name}{suffix}.png")
    img.save(path, "PNG", optimize=True)
    print(f"{path}: {size[0]}x{size[1]}, {os.path.getsize(path)} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    for scale in (1, 2, 3):
        save(icon(scale), "icon", scale, ICON)
        save(logo(scale), "logo", scale, LOGO)
        save(strip(scale), "strip", scale, STRIP)


if __name__ == "__main__":
    main()
