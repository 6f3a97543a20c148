"""2x2 photo mosaics: the localisation objective of training and the pointing check of ``benchmarks/grounding.py``.

A mosaic holds four photos, one per quadrant (top-left, top-right, bottom-left, bottom-right). A caption
of one of them names things the other three photos' captions never mention ("exclusive" words); the
heatmap of the caption, and each exclusive word's row, should then put its mass in that photo's quadrant.
A grid cell that straddles a centre line belongs to each quadrant by the share of its area there.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..model.corpus import STOPWORDS, words


def content_words(text: str) -> set[str]:
    """Lower-case content words of ``text`` (stop words and words under three letters left out)."""
    return {w for w in words(text) if len(w) > 2 and w not in STOPWORDS}


def quadrant_weights(grid: tuple[int, int], at: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """(4, h*w): the share of each grid cell's area in each quadrant (TL, TR, BL, BR) of a mosaic divided at
    fractions ``at`` (down, across) of its side."""
    h, w = grid

    def split(n: int, line: float) -> np.ndarray:  # (n, 2): share of each cell before and after the line
        edges = np.linspace(0.0, 1.0, n + 1)
        width = edges[1:] - edges[:-1]
        first = np.clip(line - edges[:-1], 0.0, None).clip(max=width) / width
        return np.stack([first, 1.0 - first], 1)

    rows, cols = split(h, at[0]), split(w, at[1])
    return np.stack([np.outer(rows[:, a], cols[:, b]).ravel() for a in (0, 1) for b in (0, 1)])


def photo_words(captions: Sequence[str], captions_of: Sequence[Sequence[int]]) -> list[set[str]]:
    """The content words of all captions of each photo."""
    return [set().union(*(content_words(captions[j]) for j in caps)) for caps in captions_of]


def exclusive_tokens(tokens: Sequence[str], others: Sequence[set[str]]) -> np.ndarray:
    """(len(tokens),) bool: word-initial tokens of content words that none of ``others`` contains."""
    out = np.zeros(len(tokens), dtype=bool)
    taken = set().union(*others) if others else set()
    for k, t in enumerate(tokens):
        w = t.lower()
        if w.isalpha() and len(w) > 2 and w not in STOPWORDS and w not in taken:
            out[k] = True
    return out


def localisation_loss(heat: torch.Tensor, rows: torch.Tensor, quad: torch.Tensor, caption_ok: torch.Tensor,
                      word_ok: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Negative log of the heatmap mass inside the right quadrant.

    ``heat`` (B, N) caption heatmaps, ``rows`` (B, L, N) word rows, ``quad`` (B, N) the right quadrant's
    cell weights, ``caption_ok`` (B,) captions with only exclusive content words, ``word_ok`` (B, L) the
    exclusive words. Returns the mean over the caption terms plus the mean over the word terms."""
    loss = heat.new_zeros(())
    if caption_ok.any():
        loss = loss - torch.log((heat[caption_ok] * quad[caption_ok]).sum(-1) + eps).mean()
    if word_ok.any():
        inside = (rows * quad[:, None, :]).sum(-1)
        loss = loss - torch.log(inside[word_ok] + eps).mean()
    return loss
