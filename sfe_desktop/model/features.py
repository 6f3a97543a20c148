"""Step-1 features as plain numpy data, and the one loop that computes them from a tower's lower layers.

The app encodes pixels and query texts (:class:`~sfe_desktop.model.runtime.SFERuntime`), ``evaluate`` and
training encode cached lower-layer features of a whole dataset, and training builds its memory bank from base
vectors: all three run :func:`encode_images_lower` and :func:`encode_texts_lower`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .sfe import SFEModel

LowerBatch = Callable[[int, int, int], torch.Tensor]  # (start, stop, width) -> hidden states of those texts


@dataclass
class ImageFeatures:
    """Step-1 output of B images."""

    global_: np.ndarray   # (B, d) float32, L2-normalised Step-1 vectors (what faiss indexes)
    patches: np.ndarray   # (B, N, d) float16 enhanced patch features (Step 2 and heatmaps)

    def __len__(self) -> int:
        return len(self.global_)

    def __getitem__(self, idx) -> "ImageFeatures":
        if isinstance(idx, int):
            idx = [idx]
        return ImageFeatures(self.global_[idx], self.patches[idx])


@dataclass
class TextFeatures:
    """Step-1 output of B texts. ``tokens`` and ``texts`` are known when the texts were tokenized here (not for
    cached dataset features)."""

    global_: np.ndarray   # (B, d) float32, L2-normalised
    words: np.ndarray     # (B, L, d) float16 enhanced word features
    mask: np.ndarray      # (B, L) bool
    tokens: list[list[str]] | None = None
    texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.global_)

    def __getitem__(self, idx) -> "TextFeatures":
        if isinstance(idx, int):
            idx = [idx]
        rows = np.arange(len(self))[idx]
        pick = (lambda items: None if items is None else [items[i] for i in rows])
        return TextFeatures(self.global_[rows], self.words[rows], self.mask[rows], pick(self.tokens), pick(self.texts))


def _as_input(batch, device: torch.device) -> torch.Tensor:
    """A slice of lower-layer output (a tensor, or a cached float16 / memory-mapped array) as float32 on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device).float()
    return torch.as_tensor(np.array(batch), device=device).float()


@torch.no_grad()
def encode_images_lower(model: SFEModel, lower, batch_size: int = 256, enhanced: bool = True,
                        concepts: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Step-1 vectors (N, d) float32 and patch features (N, P, d) float16 of images, from the image tower's
    lower-layer output ``lower`` (N, C, h, w). With ``enhanced`` False: the base vectors (before the
    cross-modal cues) and no patches (what the memory bank holds). ``concepts``: the model's concept embeddings
    when the caller keeps them (computed here otherwise)."""
    concepts = model.concept_embeddings() if concepts is None else concepts
    vecs, patches = [], []
    for a in range(0, len(lower), batch_size):
        local = model.image_local(_as_input(lower[a:a + batch_size], model.device), concepts)
        if enhanced:
            vecs.append(model.image_global(local).vec.float().cpu())
            patches.append(local.feats.half().cpu())
        else:
            vecs.append(F.normalize(model.img_pool(local.feats), dim=-1).float().cpu())
    dim = model.cfg.dim
    out = torch.cat(vecs).numpy() if vecs else np.zeros((0, dim), np.float32)
    return out, torch.cat(patches).numpy() if patches else None


@torch.no_grad()
def encode_texts_lower(model: SFEModel, mask, lower: LowerBatch, batch_size: int = 256, enhanced: bool = True,
                       concepts: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Step-1 vectors (M, d) float32, word features (M, W, d) float16 and the mask (M, W) of texts whose token
    mask is ``mask`` (M, L), W = the longest text. ``lower(start, stop, width)`` gives the text tower's
    lower-layer output of texts ``start:stop`` cut to ``width`` tokens (the longest of that batch). With
    ``enhanced`` False: base vectors and no word features (see :func:`encode_images_lower`)."""
    mask = torch.as_tensor(np.asarray(mask)).bool()
    lengths = mask.sum(1)
    mask = mask[:, :max(1, int(lengths.max())) if len(mask) else 1]
    concepts = model.concept_embeddings() if concepts is None else concepts
    vecs = []
    words = np.zeros((*mask.shape, model.cfg.dim), np.float16) if enhanced else None
    for a in range(0, len(mask), batch_size):
        b = min(len(mask), a + batch_size)
        width = max(1, int(lengths[a:b].max()))
        m = mask[a:b, :width].to(model.device)
        local = model.text_local(_as_input(lower(a, b, width), model.device), m, concepts)
        if enhanced:
            vecs.append(model.text_global(local).vec.float().cpu())
            words[a:b, :width] = local.feats.half().cpu().numpy()
        else:
            vecs.append(F.normalize(model.txt_pool(local.feats, local.mask), dim=-1).float().cpu())
    out = torch.cat(vecs).numpy() if vecs else np.zeros((0, model.cfg.dim), np.float32)
    return out, words, mask.numpy()


def cached_text_lower(text_lower: dict) -> LowerBatch:
    """``lower`` for :func:`encode_texts_lower` from a text feature cache (``data.features.text_lower_features``)."""
    hidden = text_lower["hidden"]
    return lambda a, b, width: hidden[a:b, :width]


def encode_dataset(model: SFEModel, image_lower, text_lower: dict,
                   batch_size: int = 256) -> tuple[ImageFeatures, TextFeatures]:
    """Step-1 features of every image and caption of a dataset from its cached lower-layer features."""
    model.eval()
    g, patches = encode_images_lower(model, image_lower, batch_size)
    t, words, mask = encode_texts_lower(model, text_lower["mask"], cached_text_lower(text_lower), batch_size)
    return ImageFeatures(g, patches), TextFeatures(t, words, mask)
