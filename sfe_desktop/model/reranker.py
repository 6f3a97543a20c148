"""Step 2 (internal layer): cross-modal context between one image and one text, fused with Step 1.

For aligned pairs (P of them) each word attends over the image's patches and each patch over the words;
``[feature ; context]`` goes through a small MLP (a gated residual), and the pair score combines the
word->patch and patch->word alignments with the Step-1 global cosine.

The word side of the score is a weighted mean over the words (learnt importance, uniform at
initialisation), so the pair's heatmap, ``weights @ word_to_patch``, is exactly how much each patch feeds
that side: the map the app draws is the attention the score is computed through.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .cues import masked_softmax, zero_linear, zero_linear_quiet


class Reranker(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        hidden = max(16, dim // 4)  # small: the patch branch runs for every candidate's every patch
        self.fuse_word = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), zero_linear(hidden, dim))
        self.fuse_patch = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), zero_linear(hidden, dim))
        self.mix = nn.Parameter(torch.tensor([0.5, 0.5, 1.0]))
        self.word_score = zero_linear_quiet(dim, 1)  # word importance; zero: the plain mean over words

    def word_weights(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(P, L) importance of each word in the word side of the score (sums to 1 over the real words)."""
        return masked_softmax(self.word_score(words).squeeze(-1), mask)

    def attention(self, words: torch.Tensor, mask: torch.Tensor, patches: torch.Tensor):
        """(word-to-patch attention (P, L, N), word weights (P, L)): the heatmap's parts, without the score."""
        sim = torch.einsum("pld,pnd->pln", F.normalize(words, dim=-1), F.normalize(patches, dim=-1))
        return torch.softmax(sim * self.log_scale.exp(), dim=-1), self.word_weights(words, mask)

    def forward(self, words: torch.Tensor, mask: torch.Tensor, patches: torch.Tensor,
                g_text: torch.Tensor, g_image: torch.Tensor, explain: bool = False):
        """Scores of P aligned pairs: words (P, L, d), mask (P, L), patches (P, N, d), globals (P, d).

        Inputs may be expanded views (one text against K images). Returns (P,) scores, and with
        ``explain`` also the word-to-patch attention (P, L, N) and the word weights (P, L).
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
        omega = self.word_weights(words, mask)
        local_t = (r_w * omega).sum(1)
        local_i = r_p.mean(1)
        glob = F.cosine_similarity(g_text, g_image, dim=-1)
        score = self.mix[0] * local_t + self.mix[1] * local_i + self.mix[2] * glob
        return (score, w2p, omega) if explain else score
