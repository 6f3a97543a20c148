"""Evaluation: Step-1 retrieval over a whole split, and the ranking a search gives (Step-1 top-K re-ranked by
Step 2)."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..data import strict_json
from ..data.datasets import PairDataset
from ..data.features import image_lower_features, text_lower_features
from ..model.features import ImageFeatures, TextFeatures, encode_dataset
from ..model.ranking import image_to_texts, rank, rerank_depth, text_to_images
from ..model.sfe import SFEModel
from .metrics import recall

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


def rerank_matrices(model: SFEModel, images: ImageFeatures, texts: TextFeatures, sims: np.ndarray, k: int,
                    progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ranking keys (images x captions) of image->text and text->image retrieval: each query's Step-1 top-``k``
    re-scored by Step 2 above the rest, as a search ranks them (:mod:`sfe_desktop.model.ranking`)."""
    def bar(direction: str):
        return (lambda done, total: progress(f"re-rank {direction}", done, total)) if progress else None

    i2t = rank(sims, image_to_texts(model, images, texts, progress=bar("i2t")), k).ranking_key()
    t2i = rank(sims.T, text_to_images(model, texts, images, progress=bar("t2i")), k).ranking_key()
    return i2t, t2i.T


def evaluate_encoded(model: SFEModel, images: ImageFeatures, texts: TextFeatures, cap_img,
                     rerank_k: int | None = None, progress: Progress | None = None) -> dict:
    """Step-1 and re-ranked recall of encoded images and captions; ``rerank_k`` defaults to the model's."""
    cap_img = np.asarray(cap_img)
    sims = images.global_ @ texts.global_.T
    result = {"step1": recall(sims, cap_img)}
    k = rerank_depth(model.cfg, rerank_k)
    if k:
        i2t, t2i = rerank_matrices(model, images, texts, sims, k, progress)
        a, b = recall(i2t, cap_img), recall(t2i, cap_img)
        merged = {key: v for key, v in a.items() if key.startswith("i2t")}
        merged.update({key: v for key, v in b.items() if key.startswith("t2i")})
        merged["rsum"] = sum(v for key, v in merged.items() if key != "rsum")
        result["rerank"] = merged
    else:
        result["rerank"] = dict(result["step1"])
    result["rerank_k"] = k
    return result


def dataset_lower(model: SFEModel, ds: PairDataset, cache_dir: Path | None, progress: Progress | None = None,
                  cancel: threading.Event | None = None):
    """Lower-layer features of a dataset's images and captions (cached when ``cache_dir`` is set)."""
    img = image_lower_features(model.image, ds.image_paths, cache_dir,
                               progress=(lambda d, n: progress("images", d, n)) if progress else None,
                               cancel=cancel)
    txt = text_lower_features(model.text, ds.captions, cache_dir,
                              progress=(lambda d, n: progress("captions", d, n)) if progress else None)
    return img, txt


def evaluate_dataset(model: SFEModel, ds: PairDataset, cache_dir: Path | None = None, rerank_k: int | None = None,
                     progress: Progress | None = None, cancel: threading.Event | None = None) -> dict:
    """Encode every image and caption of ``ds`` and report Step-1 and re-ranked recall."""
    t0 = time.time()
    img, txt = dataset_lower(model, ds, cache_dir, progress, cancel)
    images, texts = encode_dataset(model, img, txt)
    result = evaluate_encoded(model, images, texts, ds.caption_image, rerank_k, progress)
    result["images"], result["captions"] = len(ds.images), len(ds.captions)
    result["seconds"] = round(time.time() - t0, 1)
    return result


def write_json(result: dict, path: str | Path) -> None:
    """Write ``result`` as strict JSON (a non-finite number as null)."""
    Path(path).write_text(strict_json.dumps(result, indent=2), encoding="utf-8")
