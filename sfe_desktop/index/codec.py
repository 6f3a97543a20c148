"""Fixed-size byte rows of patch features: 4-bit codes with a float16 offset and step per group of dimensions.

A photo's patch features (P patches x D dims) become one row of ``P * D / 2`` bytes of codes (two 4-bit codes a
byte, even dimension in the low nibble) followed by ``P * D / group`` (offset, step) pairs of float16. With the
default model (81 patches x 256 dims, groups of 64) a row is 10,368 + 1,296 = 11,664 bytes against 41,472 for
float16 (0.28x).

Each group of ``group`` consecutive dimensions of one patch is quantised uniformly between its minimum and maximum:
``x ~ offset + q * step``, ``q`` in 0..15. The offset is the minimum rounded down to float16 and the step
``(max - offset) / 15`` rounded up to float16, so every value of the group lies in ``[offset, offset + 15 * step]``
and the **error bound** holds: ``|x - decode(encode(x))| <= step / 2`` for every value (up to float32 arithmetic,
about 1e-6 of the value), where ``step`` is that group's stored step (:meth:`PatchCodec.max_abs_error`). On the
default model's Flickr8k val patches this is a mean relative error (L2 of the error over L2 of the patch) of about
7.8 % and a mean cosine loss of 0.003; ``benchmarks/bench_store.py`` measures it.

Why this scheme: measured on those patches, groups of 64 dims with min/max beat one range per patch (9.4 %), a
symmetric abs-max range (9.6 %), a random Hadamard rotation before quantising (9.0 %) and Gaussian Lloyd-Max levels
(8.3 %); groups of 32 would exceed 12 KB a photo. Product quantisation would need codebooks trained per collection.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = 15  # 4-bit codes: 0..15
F16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class PatchCodec:
    """Encode (N, P, D) patch features to (N, row_bytes) uint8 rows and back.

    Parameters
    ----------
    n_patches, dim:
        Patches per photo and the width of a patch feature (``dim`` divisible by ``group``, ``group`` even).
    group:
        Consecutive dimensions of a patch that share one offset and step.
    """

    n_patches: int
    dim: int
    group: int = 64

    def __post_init__(self) -> None:
        if self.group <= 0 or self.group % 2 or self.dim % self.group:
            raise ValueError(f"dim {self.dim} is not a multiple of an even group size {self.group}")

    @property
    def groups(self) -> int:
        return self.dim // self.group

    @property
    def code_bytes(self) -> int:
        return self.n_patches * self.dim // 2

    @property
    def row_bytes(self) -> int:
        return self.code_bytes + self.n_patches * self.groups * 2 * 2  # (offset, step) float16 per group

    def encode(self, patches: np.ndarray) -> np.ndarray:
        """(N, P, D) finite floats within float16's range -> (N, row_bytes) uint8. ValueError otherwise."""
        x = np.asarray(patches, dtype=np.float32).reshape(-1, self.n_patches, self.groups, self.group)
        if not np.isfinite(x).all() or (x.size and np.abs(x).max() > F16_MAX):
            raise ValueError("patch features must be finite and within float16's range")
        lo, hi = x.min(-1), x.max(-1)
        offset = lo.astype(np.float16)
        low = offset.astype(np.float32) > lo
        offset[low] = np.nextafter(offset[low], np.float16(-np.inf))  # round the minimum down
        base = offset.astype(np.float32)
        step = ((hi - base) / LEVELS).astype(np.float16)
        short = base + LEVELS * step.astype(np.float32) < hi
        step[short] = np.nextafter(step[short], np.float16(np.inf))   # round the step up: the maximum is covered
        width = step.astype(np.float32)
        q = np.rint((x - base[..., None]) / np.where(width > 0, width, 1)[..., None])
        q = np.clip(q, 0, LEVELS).astype(np.uint8).reshape(len(x), self.n_patches, self.dim)
        rows = np.empty((len(x), self.row_bytes), np.uint8)
        rows[:, :self.code_bytes] = (q[..., 0::2] | (q[..., 1::2] << 4)).reshape(len(x), -1)
        params = np.stack([offset, step], axis=-1)  # (N, P, G, 2) float16
        rows[:, self.code_bytes:] = params.reshape(len(x), -1).view(np.uint8)
        return rows

    def _params(self, rows: np.ndarray) -> np.ndarray:
        """(N, P, G, 2) float32 (offset, step) of each group."""
        tail = np.ascontiguousarray(rows[:, self.code_bytes:]).view(np.float16)
        return tail.reshape(len(rows), self.n_patches, self.groups, 2).astype(np.float32)

    def decode(self, rows: np.ndarray) -> np.ndarray:
        """(N, row_bytes) uint8 -> (N, P, D) float32."""
        rows = np.asarray(rows, dtype=np.uint8).reshape(-1, self.row_bytes)
        codes = rows[:, :self.code_bytes].reshape(len(rows), self.n_patches, self.dim // 2)
        q = np.empty((len(rows), self.n_patches, self.dim), np.float32)
        q[..., 0::2] = codes & 0x0F
        q[..., 1::2] = codes >> 4
        params = self._params(rows)
        q = q.reshape(len(rows), self.n_patches, self.groups, self.group)
        q *= params[..., 1:2]
        q += params[..., 0:1]
        return q.reshape(len(rows), self.n_patches, self.dim)

    def max_abs_error(self, rows: np.ndarray) -> np.ndarray:
        """(N, P, D) the bound on ``|x - decode(rows)|`` of each value (half its group's step)."""
        rows = np.asarray(rows, dtype=np.uint8).reshape(-1, self.row_bytes)
        half = self._params(rows)[..., 1] / 2
        return np.repeat(half, self.group, axis=-1)

    def roundtrip(self, patches: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """``decode(encode(patches))`` in chunks of photos (what a search reads back from the store), float32."""
        patches = np.asarray(patches)
        out = np.empty(patches.shape, np.float32)
        for a in range(0, len(patches), chunk):
            out[a:a + chunk] = self.decode(self.encode(patches[a:a + chunk]))
        return out


def patch_codec(n_patches: int, dim: int, max_group: int = 64) -> PatchCodec | None:
    """The codec of a model's patches: groups of the largest even divisor of ``dim`` up to ``max_group`` (64 for
    the default model's 256 dims); None for an odd ``dim`` (such a store keeps float16)."""
    groups = [g for g in range(2, min(dim, max_group) + 1, 2) if dim % g == 0]
    return PatchCodec(n_patches, dim, groups[-1]) if groups else None
