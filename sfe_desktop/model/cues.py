"""Step-1 cue modules (external semantic cues) and pooling.

* :class:`ConceptCue` - patch-level: every patch / word attends over co-occurrence-propagated concept
  embeddings and adds what it finds through a gate.
* :class:`InstanceCue` - instance-level, cross-modal: a global vector activates the concepts whose
  same-modality prototypes it resembles and borrows their prototypes in the other modality.
* :class:`NeighbourCue` - neighbour-level, cross-modal: a global vector finds its nearest corpus items
  in its own modality and borrows their paired items in the other modality.
Each returns its attention weights so explanations are plain data.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def zero_linear(dim: int, out: int | None = None) -> nn.Linear:
    """A residual branch's output layer, zero-initialised so a cue starts as a no-op and grows in."""
    layer = nn.Linear(dim, out or dim)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def zero_linear_quiet(dim: int, out: int) -> nn.Linear:
    """:func:`zero_linear` without drawing from the random generator (so the modules built after it are
    initialised exactly as before it existed)."""
    return built_quietly(lambda: zero_linear(dim, out))


def built_quietly(build):
    """``build()`` without drawing from the random generator (the modules built after it are initialised as
    before it existed)."""
    with torch.random.fork_rng(devices=[]):
        return build()


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    if mask is not None:
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(logits, dim=dim)


class ConceptGraph(nn.Module):
    """Concept embeddings in the joint space, propagated over the corpus co-occurrence graph."""

    def __init__(self, n_concepts: int, text_channels: int, dim: int):
        super().__init__()
        self.register_buffer("concept_text", torch.zeros(n_concepts, text_channels))
        self.register_buffer("adjacency", torch.eye(n_concepts))
        self.proj = nn.Linear(text_channels, dim)
        self.gcn = nn.Linear(dim, dim)

    def forward(self) -> torch.Tensor:
        e = self.proj(self.concept_text)
        return e + F.relu(self.gcn(self.adjacency @ e))


class ConceptCue(nn.Module):
    """Patch/word-level attention over concepts with a gated residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.gate = nn.Linear(2 * dim, dim)
        nn.init.constant_(self.gate.bias, -2.0)  # start close to the un-enhanced features
        self.log_scale = nn.Parameter(torch.tensor(2.3))  # exp -> ~10

    def forward(self, x: torch.Tensor, concepts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = F.normalize(self.query(x), dim=-1)
        attn = torch.softmax(self.log_scale.exp() * q @ F.normalize(concepts, dim=-1).t(), dim=-1)
        ctx = attn @ concepts
        g = torch.sigmoid(self.gate(torch.cat([x, ctx], dim=-1)))
        return x + g * ctx, attn


class GPO(nn.Module):
    """Generalised pooling operator (Chen et al., "Learning the Best Pooling Strategy for Visual Semantic
    Embedding", CVPR 2021): each dimension's values over the valid positions sorted from the largest, summed with
    weights that a bidirectional GRU reads from the positions' sinusoidal encodings (so they depend on how many
    values there are). Returned as ``max + mix * (gpo - max)`` with ``mix`` starting at 0: a model fine-tuned
    from max pooling starts where it was."""

    def __init__(self, d_pe: int = 32, d_hidden: int = 32, temperature: float = 0.1):
        super().__init__()
        self.d_pe, self.temperature = d_pe, temperature
        self.gru = nn.GRU(d_pe, d_hidden, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(d_hidden, 1, bias=False)
        self.mix = nn.Parameter(torch.zeros(()))

    def _encoding(self, n: int, device) -> torch.Tensor:
        pos = torch.arange(n, device=device, dtype=torch.float32).unsqueeze(1)
        freq = torch.exp(torch.arange(0, self.d_pe, 2, device=device, dtype=torch.float32)
                         * (-math.log(10000.0) / self.d_pe))
        pe = torch.zeros(n, self.d_pe, device=device)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        return pe

    def weights(self, lengths: torch.Tensor, n: int) -> torch.Tensor:
        """(B, n) weights of the sorted positions: a softmax over each row's first ``lengths`` positions."""
        out = torch.zeros(len(lengths), n, device=lengths.device)
        for length in torch.unique(lengths).tolist():
            h, _ = self.gru(self._encoding(length, lengths.device).unsqueeze(0))
            h = (h[..., : h.shape[-1] // 2] + h[..., h.shape[-1] // 2:]) / 2
            w = torch.softmax(self.linear(h).squeeze(-1) / self.temperature, dim=-1)  # (1, length)
            rows = lengths == length
            out[rows, :length] = w.to(out.dtype)
        return out

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[1]
        xm = x if mask is None else x.masked_fill(~mask.unsqueeze(-1), -1e4)
        top = xm.sort(dim=1, descending=True).values
        lengths = (torch.full((x.shape[0],), n, device=x.device) if mask is None else mask.sum(1)).long()
        w = self.weights(lengths, n).to(x.dtype)
        pooled = (w.unsqueeze(-1) * top.masked_fill(top <= -1e4, 0.0)).sum(1)
        return top[:, 0] + self.mix * (pooled - top[:, 0])


class AttentionPool(nn.Module):
    """Global vector = projection of [attention pooling ; max pooling] over local features (``gpo``: the max
    pooling half generalised, :class:`GPO`)."""

    def __init__(self, dim: int, gpo: bool = False):
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.out = nn.Linear(2 * dim, dim)
        self.gpo = built_quietly(GPO) if gpo else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        w = masked_softmax(self.score(x).squeeze(-1), mask)
        att = (w.unsqueeze(-1) * x).sum(1)
        if self.gpo is not None:
            return self.out(torch.cat([att, self.gpo(x, mask)], dim=-1))
        xm = x if mask is None else x.masked_fill(~mask.unsqueeze(-1), -1e4)
        return self.out(torch.cat([att, xm.max(1).values], dim=-1))


class CrossModalLookup(nn.Module):
    """Attend over the ``k`` corpus entries most similar to a query and return a zero-initialised
    projection of their other-modality values, with the weights and indices used."""

    def __init__(self, dim: int, k: int):
        super().__init__()
        self.k = k
        self.log_scale = nn.Parameter(torch.tensor(2.3))
        self.out = zero_linear(dim)

    def lookup(self, sim: torch.Tensor, values: torch.Tensor, value_index: torch.Tensor | None = None):
        """``value_index`` maps an entry to its row of ``values`` (entries sharing a value)."""
        k = min(self.k, sim.shape[-1])
        val, idx = sim.topk(k, dim=-1)
        w = torch.softmax(self.log_scale.exp() * val, dim=-1)
        rows = idx if value_index is None else value_index[idx]
        return self.out((w.unsqueeze(-1) * values[rows]).sum(1)), w, idx


class InstanceCue(CrossModalLookup):
    """Instance-level cross-modal prototypes: same-modality similarity picks concepts, the other
    modality's prototypes of those concepts are borrowed."""

    def forward(self, g: torch.Tensor, own_protos: torch.Tensor, other_protos: torch.Tensor,
                valid: torch.Tensor | None = None):
        sim = F.normalize(g, dim=-1) @ F.normalize(own_protos, dim=-1).t()
        if valid is not None:
            sim = sim.masked_fill(~valid, -2.0)
        return self.lookup(sim, other_protos)


class NeighbourCue(CrossModalLookup):
    """Neighbour-level cross-modal memory: k nearest corpus items of the same modality lend their
    partners in the other modality. ``exclude`` masks (B, M) entries a sample must not read."""

    def forward(self, g: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                exclude: torch.Tensor | None = None, value_index: torch.Tensor | None = None):
        sim = F.normalize(g, dim=-1) @ keys.t()
        if exclude is not None:
            sim = sim.masked_fill(exclude, -2.0)
        return self.lookup(sim, values, value_index)
