"""The montage pipeline's code: tile every image and its edges into /pfs/out/montage.png."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

tiles = []
for folder in ("/pfs/images", "/pfs/edges"):
    for path in sorted(Path(folder).rglob("*.png")):
        tiles.append(Image.open(path).convert("RGB").resize((160, 120)))
cols = max(1, (len(tiles) + 1) // 2)
sheet = Image.new("RGB", (160 * cols, 120 * 2), "white")
for i, tile in enumerate(tiles):
    sheet.paste(tile, ((i % cols) * 160, (i // cols) * 120))
sheet.save("/pfs/out/montage.png")
print(f"montage: {len(tiles)} tiles")
