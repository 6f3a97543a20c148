"""Image-caption datasets: Karpathy-style JSON (Flickr8k/30k, COCO) and ``image,caption`` CSV files."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from ..errors import DatasetError
from . import strict_json
from .files import GB, open_regular, reason
from .schema import shown


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


MAX_DATASET_BYTES = 2 * GB   # COCO's Karpathy JSON is about 150 MB
MAX_CAPTION_CHARS = 10_000


def _check_images(root: Path, files: list[str], source: str) -> None:
    if not root.is_dir():
        raise DatasetError(f"images folder not found: {root}" if not root.exists() else f"{root} is not a folder")
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DatasetError(f"{source}: image '{missing[0]}' is not in {root}{more}")


def image_name(name, where: str) -> str:
    """``name`` when it is a relative path that stays inside the images folder; DatasetError otherwise (an
    absolute path or ``..`` would read any file of the machine as a training photo)."""
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise DatasetError(f"{where}: the image name must be a non-empty text (got {shown(name)})")
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive or ".." in parts:
        raise DatasetError(f"{where}: image '{name}' lies outside the images folder (names are relative to it)")
    return name


def _caption(text, where: str) -> str:
    if not isinstance(text, str) or len(text) > MAX_CAPTION_CHARS:
        raise DatasetError(f"{where}: a caption must be a text of at most {MAX_CAPTION_CHARS} characters "
                           f"(got {shown(text)})")
    return text.strip()


def _open_error(path: Path, exc: OSError) -> DatasetError:
    if isinstance(exc, FileNotFoundError):
        return DatasetError(f"dataset file not found: {path}")
    return DatasetError(f"{path}: cannot read ({reason(exc)})")


def load_karpathy(json_path: str | Path, images_dir: str | Path, split: str | list[str]) -> PairDataset:
    """Read a Karpathy-style JSON file (``images[]`` with ``filename``, ``split``, ``sentences[].raw``).

    ``split`` may be one name, a list, or ``"train"`` which also takes ``restval`` when present.
    """
    json_path, root = Path(json_path), Path(images_dir)
    try:
        data = strict_json.load_file(json_path, MAX_DATASET_BYTES)
    except OSError as exc:
        raise _open_error(json_path, exc) from exc
    except ValueError as exc:
        raise DatasetError(f"{json_path}: {exc}") from exc
    entries = data.get("images") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DatasetError(f"{json_path}: no 'images' list (not a Karpathy-style file)")
    splits = {split} if isinstance(split, str) else set(split)
    if "train" in splits:
        splits.add("restval")
    images, captions, owner = [], [], []
    for n, entry in enumerate(entries):
        where = f"{json_path}: image entry {n}"
        if not isinstance(entry, dict):
            raise DatasetError(f"{where} is not an object (it needs filename and sentences[].raw; got {shown(entry)})")
        if not isinstance(entry.get("split"), str) or entry["split"] not in splits:
            continue
        name = image_name(entry.get("filename"), f"{where}: 'filename'")
        folder = entry.get("filepath") or ""
        name = image_name(f"{image_name(folder, where + ': filepath')}/{name}", where) if folder else name
        sentences = entry.get("sentences")
        if not isinstance(sentences, list) or not all(isinstance(x, dict) for x in sentences):
            raise DatasetError(f"{where} ({name}): 'sentences' must be a list of objects with a text 'raw'")
        texts = [t for t in (_caption(x.get("raw"), f"{where} ({name})") for x in sentences) if t]
        if not texts:
            continue
        for t in texts:
            captions.append(t)
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
        raw = open_regular(csv_path, MAX_DATASET_BYTES)
    except OSError as exc:
        raise _open_error(csv_path, exc) from exc
    with io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            if not reader.fieldnames or not {"image", "caption"} <= set(reader.fieldnames):
                raise DatasetError(f"{csv_path}: header must have columns image,caption")
            for row in reader:
                where = f"{csv_path}: line {reader.line_num}"
                image, caption = (row.get("image") or "").strip(), _caption(row.get("caption") or "", where)
                if not image or not caption:
                    raise DatasetError(f"{where}: empty image or caption")
                image = image_name(image, where)
                if image not in index:
                    index[image] = len(images)
                    images.append(image)
                captions.append(caption)
                owner.append(index[image])
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{csv_path}: not UTF-8 text") from exc
        except csv.Error as exc:
            raise DatasetError(f"{csv_path}: line {reader.line_num}: {exc}") from exc
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
