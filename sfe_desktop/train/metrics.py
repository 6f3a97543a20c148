"""Recall@K for image-text retrieval (Karpathy protocol, any number of captions per image)."""
from __future__ import annotations

import numpy as np

KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")


def ranks(sims: np.ndarray, cap_img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based rank of the first correct caption of each image (i2t) and of the correct image of each
    caption (t2i), for a score matrix ``sims`` (n_images, n_captions), higher is better. Ties count
    against the query (a wrong item with an equal score ranks first)."""
    sims = np.asarray(sims, dtype=np.float64)
    cap_img = np.asarray(cap_img)
    n_img = sims.shape[0]
    best_gt = np.full(n_img, -np.inf)
    np.maximum.at(best_gt, cap_img, sims[cap_img, np.arange(len(cap_img))])
    wrong = sims.copy()
    wrong[cap_img, np.arange(len(cap_img))] = -np.inf
    i2t = (wrong >= best_gt[:, None]).sum(1)
    gt = sims[cap_img, np.arange(len(cap_img))]
    wrong_t = sims.T.copy()
    wrong_t[np.arange(len(cap_img)), cap_img] = -np.inf
    t2i = (wrong_t >= gt[:, None]).sum(1)
    return i2t, t2i


def recall(sims: np.ndarray, cap_img: np.ndarray) -> dict[str, float]:
    """R@1/5/10 both ways and rSum, in percent."""
    i2t, t2i = ranks(sims, cap_img)
    out = {}
    for name, r in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = float(100.0 * (r < k).mean())
    out["rsum"] = float(sum(out[k] for k in KEYS[:-1]))
    return out


def format_metrics(m: dict[str, float]) -> str:
    return (f"i2t R@1 {m['i2t_r1']:.1f} R@5 {m['i2t_r5']:.1f} R@10 {m['i2t_r10']:.1f} | "
            f"t2i R@1 {m['t2i_r1']:.1f} R@5 {m['t2i_r5']:.1f} R@10 {m['t2i_r10']:.1f} | rSum {m['rsum']:.1f}")
