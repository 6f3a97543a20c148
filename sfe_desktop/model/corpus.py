"""The training corpus a checkpoint keeps (:class:`Corpus`) and the statistics built from it: concept
vocabulary, co-occurrence graph, cross-modal prototypes and the memory bank."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

_WORDS = re.compile(r"[a-z]+")
STOPWORDS = set("""
a an the and or but of in on at to for from with without by as is are was were be been being it its this that these
those there here their they them he she his her him we you your our i me my mine some any all each every one two three
four five six seven eight nine ten many several other another into onto over under up down out off near next while
who whom whose which what where when how than then so very too also just only not no yes do does did doing has have
had having can could will would should may might must shall about above below behind between beside around through
across along against toward towards after before during until upon within outside inside like such more most much
few little lot lots s t re ll ve d m o y
""".split())


@dataclass
class Corpus:
    """The training captions as text: ``caption_image[j]`` is the index in ``images`` of caption ``j``'s photo.
    Photo -> caption search ranks these captions; the neighbour graph names them."""

    captions: list[str] = field(default_factory=list)
    caption_image: list[int] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    KEYS = ("captions", "caption_image", "images")

    @classmethod
    def from_dict(cls, data: dict) -> "Corpus":
        return cls(list(data.get("captions", [])), [int(i) for i in data.get("caption_image", [])],
                   list(data.get("images", [])))

    def to_dict(self) -> dict:
        return {"captions": list(self.captions), "caption_image": [int(i) for i in self.caption_image],
                "images": list(self.images)}


def words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def mine_concepts(captions: Sequence[str], k: int, min_count: int = 2) -> list[str]:
    """The ``k`` most frequent content words of the captions (stop words and short words removed)."""
    counts = Counter(w for c in captions for w in set(words(c)) if len(w) > 2 and w not in STOPWORDS)
    return [w for w, n in counts.most_common(k) if n >= min_count]


def caption_concepts(captions: Sequence[str], vocab: Sequence[str]) -> list[list[int]]:
    index = {w: i for i, w in enumerate(vocab)}
    return [sorted({index[w] for w in words(c) if w in index}) for c in captions]


def cooccurrence(concepts_per_caption: Sequence[Sequence[int]], n: int) -> torch.Tensor:
    """Symmetrically normalised co-occurrence adjacency D^-1/2 (C + I) D^-1/2 of ``n`` concepts."""
    c = np.zeros((n, n), np.float64)
    for ids in concepts_per_caption:
        if len(ids) > 1:
            idx = np.asarray(ids)
            c[np.ix_(idx, idx)] += 1.0
    np.fill_diagonal(c, 0.0)
    c += np.eye(n) * max(1.0, c.max() / 10)
    d = 1.0 / np.sqrt(c.sum(1))
    return torch.from_numpy((c * d[:, None] * d[None, :]).astype(np.float32))


def _mean_by_concept(vecs: torch.Tensor, pairs: list[tuple[int, int]], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised mean of ``vecs[item]`` over the (concept, item) pairs of each concept, and counts."""
    out, count = torch.zeros(n, vecs.shape[1]), torch.zeros(n)
    if pairs:
        concept, item = torch.tensor(pairs).t()
        out.index_add_(0, concept, vecs[item].float())
        count.index_add_(0, concept, torch.ones(len(pairs)))
    return F.normalize(out, dim=-1), count


def prototypes(img_vecs: torch.Tensor, txt_vecs: torch.Tensor, cap_img: Sequence[int],
               cap_concepts: Sequence[Sequence[int]], n: int, use_image: np.ndarray | None = None):
    """Visual and textual prototype of each concept: the mean vector of the training images whose
    captions name it, and of the captions that name it. ``use_image`` (bool per image) restricts the
    members (leave-half-out while training). Returns (proto_img, proto_txt, valid)."""
    txt_pairs, img_pairs = [], set()
    for j, (i, ids) in enumerate(zip(cap_img, cap_concepts)):
        if use_image is None or use_image[i]:
            txt_pairs.extend((k, j) for k in ids)
            img_pairs.update((k, i) for k in ids)
    p_img, n_img = _mean_by_concept(img_vecs, sorted(img_pairs), n)
    p_txt, n_txt = _mean_by_concept(txt_vecs, txt_pairs, n)
    return p_img, p_txt, (n_img > 0) & (n_txt > 0)
