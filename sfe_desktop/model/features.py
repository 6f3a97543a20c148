"""Step-1 features as plain numpy data, and the one loop that computes them from a tower's lower layers.

The app encodes pixels and query texts (:class:`~sfe_desktop.model.runtime.SFERuntime`), ``evaluate`` and
training encode cached lower-layer features of a whole dataset, and training builds its memory bank from base
vectors: all three run :func:`encode_images_lower` and :func:`encode_texts_lower`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .sfe import SFEModel

LowerBatch = Callable[[int, int, int], torch.Tensor]  # (start, stop, width) -> hidden states of those texts


@dataclass
class ImageFeatures:
    """Step-1 output of B images."""

    global_: np.ndarray   # (B, d) float32, L2-normalised Step-1 vectors
    patches: np.ndarray   # (B, N, d) float16 enhanced patch features (Step 2 and heatmaps)
    bridge: np.ndarray | None = None  # (B, r) float32, L2-normalised label-bridge vectors (None: no bridge)
    logits: np.ndarray | None = None  # (B, N, classes) float16 ImageNet logits of every patch (when asked for)
    hub: np.ndarray | None = None     # (B,) float32 hubness as a candidate (SFEModel.hubness; None: not known)

    def __len__(self) -> int:
        return len(self.global_)

    def __getitem__(self, idx) -> "ImageFeatures":
        if isinstance(idx, int):
            idx = [idx]
        return ImageFeatures(self.global_[idx], self.patches[idx], *(None if a is None else a[idx]
                                                                      for a in (self.bridge, self.logits, self.hub)))

    @classmethod
    def concat(cls, parts: Sequence["ImageFeatures"]) -> "ImageFeatures":
        """The features of several batches as one."""
        def cat(name: str):
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)

        return cls(cat("global_"), cat("patches"), cat("bridge"), cat("logits"), cat("hub"))

    def index_vectors(self) -> np.ndarray:
        """(B, d + r + 1) what the vector index stores: the Step-1 vector, the bridge vector and the hubness side
        by side (:func:`index_vectors`)."""
        return index_vectors(self.global_, self.bridge, self.hub)


@dataclass
class TextFeatures:
    """Step-1 output of B texts. ``tokens`` and ``texts`` are known when the texts were tokenized here (not for
    cached dataset features)."""

    global_: np.ndarray   # (B, d) float32, L2-normalised
    words: np.ndarray     # (B, L, d) float16 enhanced word features
    mask: np.ndarray      # (B, L) bool
    tokens: list[list[str]] | None = None
    texts: list[str] | None = None
    bridge: np.ndarray | None = None  # (B, r) float32, L2-normalised label-bridge vectors (None: no bridge)
    hub: np.ndarray | None = None     # (B,) float32 hubness as a candidate (SFEModel.hubness; None: not known)

    def __len__(self) -> int:
        return len(self.global_)

    def __getitem__(self, idx) -> "TextFeatures":
        if isinstance(idx, int):
            idx = [idx]
        rows = np.arange(len(self))[idx]
        pick = (lambda items: None if items is None else [items[i] for i in rows])
        return TextFeatures(self.global_[rows], self.words[rows], self.mask[rows], pick(self.tokens), pick(self.texts),
                            *(None if a is None else a[rows] for a in (self.bridge, self.hub)))

    def index_vectors(self) -> np.ndarray:
        """(B, d + r + 1) the Step-1 vector, the bridge vector and the hubness side by side (as photos are
        indexed)."""
        return index_vectors(self.global_, self.bridge, self.hub)


def index_vectors(global_: np.ndarray, bridge: np.ndarray | None, hub: np.ndarray | None = None) -> np.ndarray:
    """(B, d + r + 1) float32: Step-1 vectors with the bridge vectors and the hubness (zeros when not known)
    beside them; the Step-1 vectors alone (B, d) when there is no bridge."""
    global_ = np.asarray(global_, np.float32)
    if bridge is None:
        return global_
    hub = np.zeros(len(global_), np.float32) if hub is None else np.asarray(hub, np.float32)
    return np.concatenate([global_, np.asarray(bridge, np.float32), hub.reshape(-1, 1)], axis=1)


def split_index_vectors(vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Inverse of :func:`index_vectors`: (Step-1 vectors, bridge vectors or None, hubness or None) of stored
    index vectors."""
    vectors = np.asarray(vectors, np.float32)
    if vectors.shape[1] == dim:
        return vectors, None, None
    return vectors[:, :dim], vectors[:, dim:-1], vectors[:, -1]


def _as_input(batch, device: torch.device) -> torch.Tensor:
    """A slice of lower-layer output (a tensor, or a cached float16 / memory-mapped array) as float32 on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device).float()
    return torch.as_tensor(np.array(batch), device=device).float()


def _bridge_out(parts: list, model: SFEModel, wanted: bool) -> np.ndarray | None:
    if not (wanted and model.cfg.bridge_dim):
        return None
    return torch.cat(parts).numpy() if parts else np.zeros((0, model.cfg.bridge_dim), np.float32)


def candidate_hubness(model: SFEModel, vectors: np.ndarray, kind: str, wanted: bool = True) -> np.ndarray | None:
    """(B,) float32 hubness of Step-1 ``vectors`` of ``kind`` as search candidates (clipped at the fusion's floor),
    for a model whose index vectors carry it (one with a bridge; None otherwise); zeros while its fusion does not
    use it."""
    if not (wanted and model.cfg.bridge_dim):
        return None
    if model.fusion is None or not model.fusion.hub_weight:
        return np.zeros(len(vectors), np.float32)
    return model.fusion.clip_hubness(model.hubness(torch.from_numpy(vectors), kind).numpy(), kind)


@torch.no_grad()
def encode_images_lower(model: SFEModel, lower, batch_size: int = 256, enhanced: bool = True,
                        concepts: torch.Tensor | None = None, logits: bool = False, hub: bool = True) -> ImageFeatures:
    """Step-1 features of images from the image tower's lower-layer output ``lower`` (N, C, h, w): vectors (N, d)
    float32, patch features (N, P, d) float16 and bridge vectors (N, r). With ``enhanced`` False: the base vectors
    (before the cross-modal cues) alone, patches empty (what the memory bank holds). ``concepts``: the model's
    concept embeddings when the caller keeps them (computed here otherwise). ``logits``: keep every patch's
    ImageNet logits too (the class maps of explanations; a model with a bridge). ``hub`` False: without their
    hubness as candidates (photos that only query: it needs the caption bank, built once per process)."""
    concepts = model.concept_embeddings() if concepts is None else concepts
    vecs, patches, bridge, class_logits = [], [], [], []
    for a in range(0, len(lower), batch_size):
        x = _as_input(lower[a:a + batch_size], model.device)
        local = model.image_local(x, concepts)
        if enhanced:
            vecs.append(model.image_global(local).vec.float().cpu())
            patches.append(local.feats.half().cpu())
            if model.cfg.bridge_dim:
                if logits:
                    patch_logits = model.bridge.patch_logits(x)
                    class_logits.append(patch_logits.half().cpu())
                    pooled = patch_logits.mean(1)
                else:
                    pooled = model.bridge.pooled_logits(x)
                bridge.append(model.bridge.image_vectors(pooled).float().cpu())
        else:
            vecs.append(F.normalize(model.img_pool(local.feats), dim=-1).float().cpu())
    dim = model.cfg.dim
    out = torch.cat(vecs).numpy() if vecs else np.zeros((0, dim), np.float32)
    grid = torch.cat(patches).numpy() if patches else np.zeros((len(out), 0, dim), np.float16)
    return ImageFeatures(out, grid, _bridge_out(bridge, model, enhanced),
                         torch.cat(class_logits).numpy() if class_logits else None,
                         candidate_hubness(model, out, "image", enhanced and hub))


@torch.no_grad()
def encode_texts_lower(model: SFEModel, mask, lower: LowerBatch, batch_size: int = 256, enhanced: bool = True,
                       concepts: torch.Tensor | None = None, bridge: bool = True, hub: bool = False) -> TextFeatures:
    """Step-1 features of texts whose token mask is ``mask`` (M, L): vectors (M, d) float32, word features
    (M, W, d) float16 with their mask (M, W), W = the longest text, and bridge vectors (M, r) (None with
    ``bridge`` False: a caller that has them already saves the pretrained top layer's pass).
    ``lower(start, stop, width)`` gives the text tower's lower-layer output of texts ``start:stop`` cut to
    ``width`` tokens (the longest of that batch). With ``enhanced`` False: base vectors alone, word features
    empty (see :func:`encode_images_lower`). ``hub``: with their hubness as candidates (captions that photos
    search; a query text needs none, and photos always get theirs)."""
    mask = torch.as_tensor(np.asarray(mask)).bool()
    lengths = mask.sum(1)
    mask = mask[:, :max(1, int(lengths.max())) if len(mask) else 1]
    concepts = model.concept_embeddings() if concepts is None else concepts
    vecs, bridges = [], []
    words = np.zeros((*mask.shape, model.cfg.dim) if enhanced else (len(mask), 0, model.cfg.dim), np.float16)
    for a in range(0, len(mask), batch_size):
        b = min(len(mask), a + batch_size)
        width = max(1, int(lengths[a:b].max()))
        m = mask[a:b, :width].to(model.device)
        hidden = _as_input(lower(a, b, width), model.device)
        local = model.text_local(hidden, m, concepts)
        if enhanced:
            vecs.append(model.text_global(local).vec.float().cpu())
            words[a:b, :width] = local.feats.half().cpu().numpy()
            if model.cfg.bridge_dim and bridge:
                bridges.append(model.bridge.text_vectors(model.bridge.sentence(hidden, m)).float().cpu())
        else:
            vecs.append(F.normalize(model.txt_pool(local.feats, local.mask), dim=-1).float().cpu())
    out = torch.cat(vecs).numpy() if vecs else np.zeros((0, model.cfg.dim), np.float32)
    return TextFeatures(out, words, mask.numpy(), bridge=_bridge_out(bridges, model, enhanced and bridge),
                        hub=candidate_hubness(model, out, "text", enhanced and bridge and hub))


TEXT_BUCKET = 32  # texts a batch when they are grouped by length (padding is what a mixed batch spends most on)


@torch.no_grad()
def encode_texts(model: SFEModel, texts, batch_size: int = 256, concepts: torch.Tensor | None = None,
                 bridge: bool = True, hub: bool = False) -> TextFeatures:
    """Step-1 features of raw texts, tokenized here (an empty text is read as "."). The texts run longest first
    in batches of at most :data:`TEXT_BUCKET`, each cut to its own longest text, and come back in the given
    order (the same features as one padded batch, to float rounding, for about 0.6x the work on captions of
    mixed length). ``bridge`` False: no bridge vectors; ``hub``: with their hubness (see
    :func:`encode_texts_lower`)."""
    texts = [t if t.strip() else "." for t in texts]
    enc = model.text.tokenize(list(texts))
    lengths = np.asarray(enc["attention_mask"]).sum(1)
    order = np.argsort(-lengths, kind="stable")
    ids = enc["input_ids"][torch.as_tensor(order)].to(model.device)
    mask = enc["attention_mask"][torch.as_tensor(order)].to(model.device)
    feats = encode_texts_lower(model, mask.cpu(), lambda a, b, w: model.text.lower(ids[a:b, :w], mask[a:b, :w]),
                               min(batch_size, TEXT_BUCKET), concepts=concepts, bridge=bridge, hub=hub)
    back = np.argsort(order)
    out = feats[back]
    out.tokens, out.texts = enc["tokens"], list(texts)
    return out


def cached_text_lower(text_lower: dict) -> LowerBatch:
    """``lower`` for :func:`encode_texts_lower` from a text feature cache (``data.features.text_lower_features``)."""
    hidden = text_lower["hidden"]
    return lambda a, b, width: hidden[a:b, :width]


def encode_dataset(model: SFEModel, image_lower, text_lower: dict,
                   batch_size: int = 256) -> tuple[ImageFeatures, TextFeatures]:
    """Step-1 features of every image and caption of a dataset from its cached lower-layer features."""
    model.eval()
    return (encode_images_lower(model, image_lower, batch_size),
            encode_texts_lower(model, text_lower["mask"], cached_text_lower(text_lower), batch_size, hub=True))
