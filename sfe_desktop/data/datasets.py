"""Image-caption datasets: Karpathy-style JSON (Flickr8k/30k, COCO) and ``image,caption`` CSV files."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError


@dataclass(frozen=True)
class PairDataset:
    """Images and their captions. ``caption_image[j]`` is the index in ``images`` of caption ``j``."""

    root: Path
    images: list[str]  # file names relative to ``root``
    captions: list[str]
    caption_image: list[int]
    name: str = "dataset"

    @property
    def image_paths(self) -> list[Path]:
        return [self.root / f for f in self.images]

    def captions_of(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.images]
        for j, i in enumerate(self.caption_image):
            out[i].append(j)
        return out


def _check_images(root: Path, files: list[str], source: str) -> None:
    if not root.is_dir():
        raise DatasetError(f"images folder not found: {root}")
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DatasetError(f"{source}: image '{missing[0]}' is not in {root}{more}")


def load_karpathy(json_path: str | Path, images_dir: str | Path, split: str | list[str]) -> PairDataset:
    """Read a Karpathy-style JSON file (``images[]`` with ``filename``, ``split``, ``sentences[].raw``).

    ``split`` may be one name, a list, or ``"train"`` which also takes ``restval`` when present.
    """
    json_path, root = Path(json_path), Path(images_dir)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        entries = data["images"]
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset file not found: {json_path}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{json_path}: not valid JSON ({exc})") from exc
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{json_path}: no 'images' list (not a Karpathy-style file)") from exc
    splits = {split} if isinstance(split, str) else set(split)
    if "train" in splits:
        splits.add("restval")
    images, captions, owner = [], [], []
    for n, entry in enumerate(entries):
        try:
            if entry.get("split") not in splits:
                continue
            name = entry.get("filepath", "")
            name = f"{name}/{entry['filename']}" if name else entry["filename"]
            sentences = [s["raw"].strip() for s in entry["sentences"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise DatasetError(f"{json_path}: image entry {n} lacks {exc} (needs filename and sentences[].raw)") from exc
        if not sentences:
            continue
        for s in sentences:
            captions.append(s)
            owner.append(len(images))
        images.append(name)
    if not images:
        found = sorted({str(e.get("split")) for e in entries if isinstance(e, dict)})
        raise DatasetError(f"{json_path}: no images in split {sorted(splits)} (splits present: {', '.join(found)})")
    _check_images(root, images, str(json_path))
    return PairDataset(root, images, captions, owner, name=f"{json_path.stem}:{'+'.join(sorted(splits))}")


def load_csv_pairs(csv_path: str | Path, images_dir: str | Path | None = None) -> PairDataset:
    """Read a CSV with header ``image,caption`` (one row per pair; an image may have several rows)."""
    csv_path = Path(csv_path)
    root = Path(images_dir) if images_dir else csv_path.parent
    images: list[str] = []
    index: dict[str, int] = {}
    captions, owner = [], []
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"image", "caption"} <= set(reader.fieldnames):
                raise DatasetError(f"{csv_path}: header must have columns image,caption")
            for row in reader:
                line = reader.line_num
                image, caption = (row.get("image") or "").strip(), (row.get("caption") or "").strip()
                if not image or not caption:
                    raise DatasetError(f"{csv_path}: line {line}: empty image or caption")
                if image not in index:
                    index[image] = len(images)
                    images.append(image)
                captions.append(caption)
                owner.append(index[image])
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset file not found: {csv_path}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{csv_path}: not UTF-8 text") from exc
    if not images:
        raise DatasetError(f"{csv_path}: no rows")
    _check_images(root, images, str(csv_path))
    return PairDataset(root, images, captions, owner, name=csv_path.stem)


def load_dataset(path: str | Path, images_dir: str | Path | None, split: str = "test") -> PairDataset:
    """Load a JSON (Karpathy) or CSV dataset by file extension."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return load_csv_pairs(path, images_dir)
    if images_dir is None:
        images_dir = path.parent / "images"
    return load_karpathy(path, images_dir, split)
