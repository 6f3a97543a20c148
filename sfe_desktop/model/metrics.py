"""Recall@K for image-text retrieval (Karpathy protocol, any number of captions per image)."""
from __future__ import annotations

import math

import numpy as np

KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")


def ranks(sims: np.ndarray, cap_img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of the first correct caption of each image (i2t) and of the correct image of each
    caption (t2i), for a score matrix ``sims`` (n_images, n_captions), higher is better. Ties count
    against the query (a wrong item with an equal score ranks first), and so do non-finite scores: a correct
    item scored NaN or infinite is a miss (rank = the number of items), a wrong one scored so ranks first."""
    sims = np.asarray(sims, dtype=np.float64)
    cap_img = np.asarray(cap_img)
    n_img, n_cap = sims.shape
    cols = np.arange(len(cap_img))
    is_gt = np.zeros(sims.shape, dtype=bool)
    is_gt[cap_img, cols] = True
    finite = np.isfinite(sims)
    gt = np.where(finite[cap_img, cols], sims[cap_img, cols], -np.inf)
    best_gt = np.full(n_img, -np.inf)
    np.maximum.at(best_gt, cap_img, gt)
    above = ~finite | (sims >= best_gt[:, None])  # wrong captions at or above each image's best correct one
    i2t = np.where(np.isfinite(best_gt), (above & ~is_gt).sum(1), n_cap)
    above_t = ~finite.T | (sims.T >= gt[:, None])
    t2i = np.where(np.isfinite(gt), (above_t & ~is_gt.T).sum(1), n_img)
    return i2t, t2i


def recall_of_ranks(i2t: np.ndarray, t2i: np.ndarray) -> dict[str, float]:
    """R@1/5/10 both ways and rSum, in percent, from per-query ranks as :func:`ranks` gives them."""
    out = {}
    for name, r in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = float(100.0 * (np.asarray(r) < k).mean())
    out["rsum"] = float(sum(out[k] for k in KEYS[:-1]))
    return out


def recall(sims: np.ndarray, cap_img: np.ndarray) -> dict[str, float]:
    """R@1/5/10 both ways and rSum, in percent."""
    return recall_of_ranks(*ranks(sims, cap_img))


def recall_both_ways(i2t: np.ndarray, t2i_transposed: np.ndarray, cap_img: np.ndarray) -> dict[str, float]:
    """Recall of image->text from the first (images x captions) matrix and of text->image from the second (the
    two directions of a search score differently: each side's queries have their own fusion weights)."""
    return recall_of_ranks(ranks(i2t, cap_img)[0], ranks(t2i_transposed, cap_img)[1])


def paired(ranks_a: np.ndarray, ranks_b: np.ndarray, k: int) -> dict:
    """Two rankings of the same queries compared query by query at R@``k`` (0-based ranks as :func:`ranks` gives
    them): how many queries each finds that the other misses, and the exact two-sided McNemar p-value of that
    split (the chance of one at least this uneven if either ranking were as likely to win a query)."""
    a, b = np.asarray(ranks_a) < k, np.asarray(ranks_b) < k
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    n, low = only_a + only_b, min(only_a, only_b)
    p = min(1.0, 2.0 * sum(math.comb(n, i) for i in range(low + 1)) / 2.0 ** n) if n else 1.0
    return {"k": k, "a": int(a.sum()), "b": int(b.sum()), "only_a": only_a, "only_b": only_b, "p": p}


def format_metrics(m: dict[str, float]) -> str:
    return (f"i2t R@1 {m['i2t_r1']:.1f} R@5 {m['i2t_r5']:.1f} R@10 {m['i2t_r10']:.1f} | "
            f"t2i R@1 {m['t2i_r1']:.1f} R@5 {m['t2i_r5']:.1f} R@10 {m['t2i_r10']:.1f} | rSum {m['rsum']:.1f}")
