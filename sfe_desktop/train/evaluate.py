"""Evaluation: Step-1 retrieval over a whole split, and the ranking a search gives (Step-1 top-K re-ranked by
Step 2). :func:`evaluate_dataset` passes the patch features through the index's patch codec first (as a search
reads them back from ``patches.q4``) unless asked for the float16 features."""
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
from ..index.codec import patch_codec
from ..model.features import ImageFeatures, TextFeatures, encode_dataset
from ..model.ranking import FusedScoring, image_to_texts, rank, rerank_depth, text_to_images
from ..model.sfe import SFEModel
from ..model.metrics import ranks, recall_of_ranks

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


def rerank_matrices(model: SFEModel, images: ImageFeatures, texts: TextFeatures, scoring: FusedScoring, k: int,
                    progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ranking keys (images x captions) of image->text and text->image retrieval: each query's Step-1 top-``k``
    re-scored by Step 2 above the rest, as a search ranks them (:mod:`sfe_desktop.model.ranking`)."""
    def bar(direction: str):
        return (lambda done, total: progress(f"re-rank {direction}", done, total)) if progress else None

    i2t = rank(scoring.i2t, scoring.rescore_i2t(image_to_texts(model, images, texts, progress=bar("i2t"))), k)
    t2i = rank(scoring.t2i, scoring.rescore_t2i(text_to_images(model, texts, images, progress=bar("t2i"))), k)
    return i2t.ranking_key(), t2i.ranking_key().T


def evaluate_encoded(model: SFEModel, images: ImageFeatures, texts: TextFeatures, cap_img,
                     rerank_k: int | None = None, progress: Progress | None = None, ranks_out: dict | None = None
                     ) -> dict:
    """Step-1 and re-ranked recall of encoded images and captions, ranked as a search ranks (the bridge fused in
    when the model has one); ``rerank_k`` defaults to the model's. With a bridge, ``model`` (the trained part's
    Step 1 alone) and ``bridge`` (the bridge alone) are reported too. ``ranks_out``: filled with each ranking's
    per-query ranks (:func:`~sfe_desktop.model.metrics.ranks`: (i2t, t2i)) under the same keys."""
    cap_img = np.asarray(cap_img)
    scoring = FusedScoring.of(model, images, texts)
    matrices = {"step1": (scoring.i2t, scoring.t2i.T)}
    if scoring.fusion is not None:
        matrices["model"] = (images.global_ @ texts.global_.T,) * 2
        matrices["bridge"] = (images.bridge @ texts.bridge.T,) * 2
    k = rerank_depth(model.cfg, rerank_k)
    matrices["rerank"] = rerank_matrices(model, images, texts, scoring, k, progress) if k else matrices["step1"]
    per_query = {name: (ranks(m[0], cap_img)[0], ranks(m[1], cap_img)[1]) for name, m in matrices.items()}
    result = {name: recall_of_ranks(*r) for name, r in per_query.items()}
    if ranks_out is not None:
        ranks_out.update(per_query)
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


PATCH_FORMATS = ("q4", "float16")  # as the index stores them (patches.q4), or as the model computes them


def stored_patches(images: ImageFeatures, patches: str = "q4") -> ImageFeatures:
    """``images`` with their patch features as a search reads them from the index: ``"q4"`` decoded from the
    store's codec (:mod:`sfe_desktop.index.codec`; float16 when the model's width has none), ``"float16"`` as
    computed."""
    if patches not in PATCH_FORMATS:
        raise ValueError(f"patches must be one of {PATCH_FORMATS}, not {patches!r}")
    codec = patch_codec(images.patches.shape[1], images.patches.shape[2]) if patches == "q4" else None
    if codec is None:
        return images
    return ImageFeatures(images.global_, codec.roundtrip(images.patches), images.bridge, images.logits, images.hub)


def evaluate_dataset(model: SFEModel, ds: PairDataset, cache_dir: Path | None = None, rerank_k: int | None = None,
                     progress: Progress | None = None, cancel: threading.Event | None = None,
                     patches: str = "q4") -> dict:
    """Encode every image and caption of ``ds`` and report Step-1 and re-ranked recall, the patch features read
    back as the index stores them (``patches``: see :func:`stored_patches`)."""
    t0 = time.time()
    img, txt = dataset_lower(model, ds, cache_dir, progress, cancel)
    images, texts = encode_dataset(model, img, txt)
    result = evaluate_encoded(model, stored_patches(images, patches), texts, ds.caption_image, rerank_k, progress)
    result["patches"] = patches
    result["images"], result["captions"] = len(ds.images), len(ds.captions)
    result["seconds"] = round(time.time() - t0, 1)
    return result


def write_json(result: dict, path: str | Path) -> None:
    """Write ``result`` as strict JSON (a non-finite number as null)."""
    Path(path).write_text(strict_json.dumps(result, indent=2), encoding="utf-8")
