#!/usr/bin/env python3
"""Draws the Google Wallet artwork of public/static/google/ (program logo and hero image).

Google shows a loyalty class's `programLogo` cropped to a circle (660 x 660 recommended) and its
`heroImage` across the full width of the card (1032 x 336 recommended). The images are original
to loy: a gold ring around a star on navy for the logo, and translucent white arcs for the hero,
so that the card's hexBackgroundColor shows through and tints it in the program's colours.

Only the Python standard library is needed (shapes are drawn with signed distances, which
gives smooth edges without a graphics library). Run from the repository root:

    python3 scripts/make-google-artwork.py

The output is committed; rerun only to change the design.
"""

import math
import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(__file__), "..", "public", "static", "google")
NAVY = (28, 43, 74)
GOLD = (244, 196, 98)
LOGO = (660, 660)
HERO = (1032, 336)


def png(path, width, height, pixel):
    """Writes an 8-bit RGBA PNG; pixel(x, y) returns (r, g, b, a) for the pixel's centre."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # no filter
        for x in range(width):
            rows.extend(pixel(x + 0.5, y + 0.5))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)
    print(f"{path}: {width}x{height}, {len(data)} bytes")


def coverage(signed_distance):
    """How much of a pixel a shape covers, from the signed distance of its centre (inside < 0)."""
    return min(1.0, max(0.0, 0.5 - signed_distance))


def segment_distance(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def polygon_distance(px, py, points):
    """Signed distance to a closed polygon (negative inside)."""
    d = min(segment_distance(px, py, *points[i], *points[(i + 1) % len(points)]) for i in range(len(points)))
    inside = False
    for i in range(len(points)):
        (ax, ay), (bx, by) = points[i], points[(i + 1) % len(points)]
        if (ay > py) != (by > py) and px < ax + (py - ay) * (bx - ax) / (by - ay):
            inside = not inside
    return -d if inside else d


def star_points(cx, cy, outer, inner, n=5):
    return [
        (cx + (outer if i % 2 == 0 else inner) * math.cos(-math.pi / 2 + i * math.pi / n),
         cy + (outer if i % 2 == 0 else inner) * math.sin(-math.pi / 2 + i * math.pi / n))
        for i in range(2 * n)
    ]


def blend(under, over, alpha):
    return tuple(round(u + (o - u) * alpha) for u, o in zip(under, over))


def logo():
    w, h = LOGO
    cx, cy, radius = w / 2, h / 2, w * 0.30
    ring = radius * 0.14
    star = star_points(cx, cy, radius * 0.62, radius * 0.26)
    star_box = (cx - radius, cy - radius, cx + radius, cy + radius)

    def pixel(x, y):
        ring_cover = coverage(abs(math.hypot(x - cx, y - cy) - radius) - ring / 2)
        star_cover = 0.0
        if star_box[0] <= x <= star_box[2] and star_box[1] <= y <= star_box[3]:
            star_cover = coverage(polygon_distance(x, y, star))
        return (*blend(NAVY, GOLD, max(ring_cover, star_cover)), 255)

    png(os.path.join(OUT, "logo.png"), w, h, pixel)


def hero():
    w, h = HERO
    cx, cy = w * 0.92, h * 1.25
    step = h * 0.22
    width = h * 0.035

    def pixel(x, y):
        d = math.hypot(x - cx, y - cy)
        alpha = 0.0
        for i in range(9):
            r = step * (i + 2)
            alpha = max(alpha, coverage(abs(d - r) - width / 2) * max(10, 46 - i * 4) / 255)
        shade = 28 * (y / h) ** 2 / 255
        # White arcs over a faint dark band at the bottom, both translucent.
        a = alpha + shade * (1 - alpha)
        if a == 0:
            return (0, 0, 0, 0)
        grey = round(255 * alpha / a)
        return (grey, grey, grey, round(a * 255))

    png(os.path.join(OUT, "hero.png"), w, h, pixel)


def main():
    os.makedirs(OUT, exist_ok=True)
    logo()
    hero()


if __name__ == "__main__":
    main()
