"""Contrastive losses: symmetric InfoNCE on a batch score matrix, VSE++ hardest-negative hinge, and
a candidate-set cross entropy for Step 2."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def infonce(sims: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """``sims`` (B, B): rows images, columns texts, matching pairs on the diagonal."""
    target = torch.arange(sims.shape[0], device=sims.device)
    logits = sims / temperature
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def vsepp(sims: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Bidirectional hinge triplet loss with the hardest negative in the batch (VSE++)."""
    pos = sims.diag()
    eye = torch.eye(sims.shape[0], dtype=torch.bool, device=sims.device)
    cost_t = (margin + sims - pos[:, None]).clamp(min=0).masked_fill(eye, 0)
    cost_i = (margin + sims - pos[None, :]).clamp(min=0).masked_fill(eye, 0)
    return cost_t.max(1).values.mean() + cost_i.max(0).values.mean()


def candidate_loss(scores: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """``scores`` (Q, C) with the positive in column 0."""
    return F.cross_entropy(scores * scale, torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device))
