"""A tiny synthetic image-caption dataset: coloured shapes on plain backgrounds, with captions."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 60, 220), "yellow": (240, 220, 30)}
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15)}


def draw(colour: str, shape: str, background: str, size: int = 64) -> Image.Image:
    im = Image.new("RGB", (size, size), BACKGROUNDS[background])
    d = ImageDraw.Draw(im)
    box = (size // 5, size // 5, size * 4 // 5, size * 4 // 5)
    if shape == "circle":
        d.ellipse(box, fill=COLOURS[colour])
    elif shape == "square":
        d.rectangle(box, fill=COLOURS[colour])
    else:
        d.polygon([(size // 2, size // 6), (size // 6, size * 5 // 6), (size * 5 // 6, size * 5 // 6)],
                  fill=COLOURS[colour])
    return im


def make_dataset(root: Path, n_train_repeat: int = 2) -> Path:
    """Write images and a Karpathy-style JSON; returns the JSON path. 24 distinct scenes."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    entries = []
    n = 0
    for rep in range(n_train_repeat + 1):
        for colour in COLOURS:
            for shape in SHAPES:
                for bg in BACKGROUNDS:
                    name = f"{colour}_{shape}_{bg}_{rep}.png"
                    draw(colour, shape, bg).save(root / "images" / name)
                    caps = [f"a {colour} {shape} on a {bg} background", f"the {shape} is {colour}",
                            f"{colour} {shape} , {bg} backdrop"]
                    entries.append({"filename": name, "split": "val" if rep == n_train_repeat else "train",
                                    "imgid": n, "sentences": [{"raw": c, "tokens": c.split()} for c in caps]})
                    n += 1
    path = root / "dataset_synthetic.json"
    path.write_text(json.dumps({"images": entries}), encoding="utf-8")
    return path
