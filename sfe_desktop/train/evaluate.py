"""Evaluation: Step-1 retrieval over a whole split, and Step-1 top-K re-ranked by Step 2."""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.datasets import PairDataset
from ..data.features import image_lower_features, text_lower_features
from ..model.sfe import SFEModel
from .metrics import recall

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


@dataclass
class Encoded:
    img_global: torch.Tensor   # (N, d)
    img_patches: torch.Tensor  # (N, P, d) float16
    txt_global: torch.Tensor   # (M, d)
    txt_words: torch.Tensor    # (M, L, d) float16
    txt_mask: torch.Tensor     # (M, L) bool


def _dev(model: SFEModel) -> torch.device:
    return model.img_proj.weight.device


@torch.no_grad()
def encode_lower(model: SFEModel, image_lower, text_lower: dict, batch_size: int = 256) -> Encoded:
    """Step-1 outputs for cached lower-layer features (model in eval mode)."""
    model.eval()
    dev = _dev(model)
    concepts = model.concept_embeddings()
    gi, pi, gt, wt = [], [], [], []
    for a in range(0, len(image_lower), batch_size):
        x = torch.as_tensor(np.array(image_lower[a:a + batch_size]), device=dev).float()
        local = model.image_local(x, concepts)
        gi.append(model.image_global(local).vec.cpu())
        pi.append(local.feats.half().cpu())
    ids, mask, hidden = text_lower["ids"], text_lower["mask"], text_lower["hidden"]
    width = int(mask.sum(1).max())
    for a in range(0, len(ids), batch_size):
        m = torch.as_tensor(mask[a:a + batch_size, :width], device=dev)
        h = torch.as_tensor(np.array(hidden[a:a + batch_size, :width]), device=dev).float()
        local = model.text_local(h, m, concepts)
        gt.append(model.text_global(local).vec.cpu())
        wt.append(local.feats.half().cpu())
    return Encoded(torch.cat(gi), torch.cat(pi), torch.cat(gt), torch.cat(wt),
                   torch.as_tensor(mask[:, :width]).bool())


@torch.no_grad()
def rerank_matrix(model: SFEModel, enc: Encoded, sims: np.ndarray, k: int, chunk: int = 2048,
                  progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Score matrices (images x captions) where each query's Step-1 top-``k`` candidates carry their
    Step-2 score (placed above every other candidate) and the rest keep Step-1 order. Returns
    (for image->text, for text->image)."""
    dev = _dev(model)
    s = torch.as_tensor(sims)
    out = []
    for direction in ("i2t", "t2i"):
        mat = s if direction == "i2t" else s.t()
        kk = min(k, mat.shape[1])
        top = mat.topk(kk, dim=1).indices                      # (Q, k)
        q_idx = torch.arange(mat.shape[0])[:, None].expand(-1, kk).reshape(-1)
        c_idx = top.reshape(-1)
        img_idx, txt_idx = (q_idx, c_idx) if direction == "i2t" else (c_idx, q_idx)
        scores = torch.empty(len(q_idx))
        for a in range(0, len(q_idx), chunk):
            ii, tt = img_idx[a:a + chunk], txt_idx[a:a + chunk]
            scores[a:a + chunk] = model.pair_scores(
                enc.txt_words[tt].to(dev).float(), enc.txt_mask[tt].to(dev), enc.img_patches[ii].to(dev).float(),
                enc.txt_global[tt].to(dev), enc.img_global[ii].to(dev)).float().cpu()
            if progress:
                progress(f"re-rank {direction}", min(a + chunk, len(q_idx)), len(q_idx))
        new = mat.clone().float()
        new.scatter_(1, top, scores.view(-1, kk) + 1e3)       # re-ranked candidates above the rest
        out.append(new.numpy() if direction == "i2t" else new.t().numpy())
    return out[0], out[1]


def evaluate_encoded(model: SFEModel, enc: Encoded, cap_img, rerank_k: int | None = None,
                     progress: Progress | None = None) -> dict:
    cap_img = np.asarray(cap_img)
    sims = (enc.img_global @ enc.txt_global.t()).numpy()
    result = {"step1": recall(sims, cap_img)}
    if model.cfg.use_step2:
        i2t, t2i = rerank_matrix(model, enc, sims, rerank_k or model.cfg.rerank_k, progress=progress)
        a, b = recall(i2t, cap_img), recall(t2i, cap_img)
        merged = {k: v for k, v in a.items() if k.startswith("i2t")}
        merged.update({k: v for k, v in b.items() if k.startswith("t2i")})
        merged["rsum"] = sum(v for k, v in merged.items() if k != "rsum")
        result["rerank"] = merged
    else:
        result["rerank"] = dict(result["step1"])
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
    enc = encode_lower(model, img, txt)
    result = evaluate_encoded(model, enc, ds.caption_image, rerank_k, progress)
    result["images"], result["captions"] = len(ds.images), len(ds.captions)
    result["seconds"] = round(time.time() - t0, 1)
    return result


def write_json(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2), encoding="utf-8")
