"""Synthetic index vectors for scale tests and benchmarks: a million photos without a million photos.

Real Step-1 vectors are far from uniform on the sphere: photos come in topics and near-duplicate groups, and their
embeddings vary in a few dozen directions more than in the rest. :class:`ClusteredVectors` mimics that: points of a
two-level mixture (topics, then groups within a topic) in a ``latent``-dimensional space, mapped linearly into each
part of an index vector (the model's Step-1 vector, the label bridge), plus isotropic noise, each part
L2-normalised as the model's are. Queries are drawn the same way with more spread (a text is near a topic, not
a copy of a photo). Chunks are reproducible on their own (seeded by their start), so a million rows can be
written a chunk at a time.
"""
from __future__ import annotations

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class ClusteredVectors:
    """Photos' and queries' (Step-1 vector, bridge vector) pairs; ``dims``: their widths (bridge 0: none)."""

    def __init__(self, dims: tuple[int, int] = (256, 192), latent: int = 64, topics: int = 200, groups: int = 20,
                 seed: int = 0):
        rng = np.random.default_rng(seed)
        self.dims, self.latent, self.seed = dims, latent, seed
        centres = rng.standard_normal((topics, latent))
        self.groups = (np.repeat(centres, groups, 0) + 0.6 * rng.standard_normal((topics * groups, latent)))
        self.maps = [rng.standard_normal((latent, d)) / np.sqrt(latent) for d in dims if d]

    def _draw(self, rng: np.random.Generator, n: int, spread: float, noise: float) -> tuple[np.ndarray, ...]:
        z = self.groups[rng.integers(0, len(self.groups), n)] + spread * rng.standard_normal((n, self.latent))
        parts = [_unit(z @ m + noise * np.sqrt(self.latent / m.shape[1]) * rng.standard_normal((n, m.shape[1])))
                 for m in self.maps]
        return parts[0], (parts[1] if len(parts) > 1 else None)

    def photos(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(Step-1 vectors, bridge vectors or None) of photos ``start`` .. ``start + n - 1``."""
        return self._draw(np.random.default_rng([self.seed, 1, start]), n, 0.5, 0.3)

    def queries(self, n: int, seed: int = 0, bridge_weight: float = 0.5) -> np.ndarray:
        """(n, sum(dims) + 1) fused query vectors: the Step-1 part, ``bridge_weight`` times the bridge part and
        the hubness weight (-1; the photos' hubness is 0 here) as index vectors lay them out
        (:func:`~sfe_desktop.model.features.index_vectors`); the Step-1 part alone without a bridge."""
        g, b = self._draw(np.random.default_rng([self.seed, 2, seed]), n, 0.8, 0.8)
        if b is None:
            return g
        return np.concatenate([g, bridge_weight * b, -np.ones((n, 1))], 1).astype(np.float32)
