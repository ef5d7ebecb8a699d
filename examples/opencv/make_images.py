"""Draw a few synthetic "photos" (shapes on gradients) so the demo needs no downloads."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw


def draw(path: Path, seed: int) -> None:
    w, h = 320, 240
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * (seed + 3)) % 256, (y * 2 + seed * 40) % 256, (x + y + seed * 70) % 256)
    d = ImageDraw.Draw(img)
    for i in range(3 + seed % 3):
        x0, y0 = (37 * (i + seed)) % (w - 90), (53 * (i + 2 * seed)) % (h - 90)
        shape = d.ellipse if (i + seed) % 2 else d.rectangle
        shape([x0, y0, x0 + 60 + 10 * i, y0 + 50 + 7 * i], fill=(255 - 40 * i, 30 * i, 200), outline="white", width=3)
    img.save(path)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(sys.argv[2:] or ["liberty", "kitten", "harbor"]):
        draw(out / f"{name}.png", n + 1)
