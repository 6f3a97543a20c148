"""Build benchmarks/data/twemoji (the out-of-domain check of benchmarks/ood.py) from the npm packages
emoji-datasource (names, MIT) and emoji-datasource-twitter (Twemoji 64 px PNGs, CC-BY 4.0):

    npm pack emoji-datasource emoji-datasource-twitter   # in an empty folder, then untar both there
    python scripts/make_twemoji_set.py FOLDER/package

Keeps the emoji of objects, animals, plants, food, places, vehicles and activities (no people, faces,
flags or symbols), flattened onto white, with their Unicode names as captions."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

CATEGORIES = {"Animals & Nature", "Food & Drink", "Travel & Places", "Objects", "Activities"}
OUT = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "twemoji"


def main(package: str) -> None:
    root = Path(package)
    entries = json.loads((root / "emoji.json").read_text(encoding="utf-8"))
    OUT.mkdir(parents=True, exist_ok=True)
    items = []
    for e in sorted(entries, key=lambda e: e["sort_order"]):
        if e["category"] not in CATEGORIES or not e.get("has_img_twitter"):
            continue
        src = root / "img" / "twitter" / "64" / e["image"]
        rgba = Image.open(src).convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        name = e["image"].replace(".png", ".jpg")
        flat.save(OUT / name, quality=92)
        items.append({"file": name, "caption": e["name"].lower(), "category": e["category"]})
    (OUT / "labels.json").write_text(json.dumps(items, indent=0), encoding="utf-8")
    print(f"{len(items)} pictures in {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
