"""The edges pipeline's code: edge-detect every image of the datum into /pfs/out."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, ImageFilter, ImageOps

for root, _dirs, files in os.walk("/pfs/images"):
    for name in files:
        src = Path(root) / name
        img = ImageOps.grayscale(Image.open(src)).filter(ImageFilter.FIND_EDGES)
        img = ImageOps.autocontrast(img)
        img.save(Path("/pfs/out") / (src.stem + ".png"))
        print(f"edges: {src} -> /pfs/out/{src.stem}.png")
