"""Step 2 (internal layer): cross-modal context between one image and one text, fused with Step 1.

For aligned pairs (P of them) each word attends over the image's patches and each patch over the words;
``[feature ; context]`` goes through a small MLP (a gated residual), and the pair score combines the
word->patch and patch->word alignments with the Step-1 global cosine.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .cues import masked_softmax, zero_linear


class Reranker(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        hidden = max(16, dim // 4)  # small: the patch branch runs for every candidate's every patch
        self.fuse_word = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), zero_linear(hidden, dim))
        self.fuse_patch = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), zero_linear(hidden, dim))
        self.mix = nn.Parameter(torch.tensor([0.5, 0.5, 1.0]))

    def forward(self, words: torch.Tensor, mask: torch.Tensor, patches: torch.Tensor,
                g_text: torch.Tensor, g_image: torch.Tensor, explain: bool = False):
        """Scores of P aligned pairs: words (P, L, d), mask (P, L), patches (P, N, d), globals (P, d).

        Inputs may be expanded views (one text against K images). Returns (P,) scores, and with
        ``explain`` also the word-to-patch attention (P, L, N).
        """
        wn, pn = F.normalize(words, dim=-1), F.normalize(patches, dim=-1)
        sim = torch.einsum("pld,pnd->pln", wn, pn) * self.log_scale.exp()
        w2p = torch.softmax(sim, dim=-1)                       # each word over patches
        p2w = masked_softmax(sim.transpose(1, 2), mask.unsqueeze(1))  # each patch over words
        ctx_w = w2p @ patches
        ctx_p = p2w @ words
        word_out = words + self.fuse_word(torch.cat([words, ctx_w], dim=-1))
        patch_out = patches + self.fuse_patch(torch.cat([patches, ctx_p], dim=-1))
        r_w = F.cosine_similarity(word_out, ctx_w, dim=-1)
        r_p = F.cosine_similarity(patch_out, ctx_p, dim=-1)
        m = mask.to(r_w.dtype)
        local_t = (r_w * m).sum(1) / m.sum(1).clamp(min=1)
        local_i = r_p.mean(1)
        glob = F.cosine_similarity(g_text, g_image, dim=-1)
        score = self.mix[0] * local_t + self.mix[1] * local_i + self.mix[2] * glob
        return (score, w2p) if explain else score
