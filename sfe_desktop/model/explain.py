"""Explanations of one text-image pair as plain data (schema in docs/architecture.md)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def merge_wordpieces(tokens: Sequence[str], rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Join WordPiece tokens (``##`` continuations) into words and average their attention rows;
    special tokens are dropped. Returns (words, (W, N) rows, each still summing to 1)."""
    words, groups = [], []
    for i, t in enumerate(tokens):
        if t in ("[CLS]", "[SEP]", "[PAD]"):
            continue
        if t.startswith("##") and words:
            words[-1] += t[2:]
            groups[-1].append(i)
        else:
            words.append(t)
            groups.append([i])
    if not words:
        return [], np.zeros((0, rows.shape[1]), np.float32)
    return words, np.stack([rows[g].mean(0) for g in groups]).astype(np.float32)


def _top_concepts(names, weights: torch.Tensor, idx: torch.Tensor, limit: int = 8) -> list[dict]:
    out = []
    for w, i in zip(weights.tolist(), idx.tolist()):
        if i < len(names) and w > 0:
            out.append({"name": names[i], "weight": float(w)})
    return out[:limit]


def _concepts_from_attention(names, attn: torch.Tensor | None, limit: int = 8):
    if attn is None or not names:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    mean = attn.mean(0)[: len(names)]
    k = min(limit, mean.numel())
    return mean.topk(k)


def explain_pair(rt, text, image) -> dict:
    """``text``: TextFeatures of one row; ``image``: ImageFeatures of one row."""
    m, dev, names = rt.model, rt.device, rt.concept_names
    words = torch.from_numpy(text.words[:1].astype(np.float32)).to(dev)
    mask = torch.from_numpy(text.mask[:1]).to(dev)
    patches = torch.from_numpy(image.patches[:1].astype(np.float32)).to(dev)
    g_t = torch.from_numpy(text.global_[:1]).to(dev)
    g_i = torch.from_numpy(image.global_[:1]).to(dev)
    score, w2p = m.pair_scores(words, mask, patches, g_t, g_i, explain=True)
    step1 = float((g_t * g_i).sum())
    n_words = int(mask.sum())
    if w2p is None:  # Step 2 off: plain cosine attention for the heatmap
        w2p = torch.softmax(10 * F.normalize(words, dim=-1) @ F.normalize(patches, dim=-1).transpose(1, 2), dim=-1)
    word_list, attn = merge_wordpieces(text.tokens[0][:n_words], w2p[0, :n_words].cpu().numpy())

    # concepts: instance-level activations (or patch/word-to-concept attention when that cue is off)
    img_base = F.normalize(m.img_pool(patches), dim=-1)
    txt_base = F.normalize(m.txt_pool(words, mask), dim=-1)
    img_info = m._enhance(img_base, "image").info
    txt_info = m._enhance(txt_base, "text").info
    concepts = rt._concepts
    if "instance" in img_info:
        img_c = _top_concepts(names, *(t[0] for t in img_info["instance"]))
        txt_c = _top_concepts(names, *(t[0] for t in txt_info["instance"]))
    elif concepts is not None:
        img_attn = torch.softmax(10 * F.normalize(m.img_concept.query(patches[0]), dim=-1)
                                 @ F.normalize(concepts, dim=-1).t(), dim=-1)
        txt_attn = torch.softmax(10 * F.normalize(m.txt_concept.query(words[0, :n_words]), dim=-1)
                                 @ F.normalize(concepts, dim=-1).t(), dim=-1)
        img_c = _top_concepts(names, *_concepts_from_attention(names, img_attn))
        txt_c = _top_concepts(names, *_concepts_from_attention(names, txt_attn))
    else:
        img_c, txt_c = [], []
    union = list(dict.fromkeys([c["name"] for c in txt_c] + [c["name"] for c in img_c]))
    index = {n: i for i, n in enumerate(names)}
    if m.cfg.use_patch and union:
        ids = torch.tensor([index[n] for n in union], device=dev)
        cooc = m.concepts.adjacency[ids][:, ids].cpu().numpy().astype(np.float32)
        np.fill_diagonal(cooc, 0.0)
    else:
        cooc = np.zeros((len(union), len(union)), np.float32)

    return {
        "score": float(score[0]),
        "step1": step1,
        "words": word_list,
        "grid": list(rt.grid),
        "attention": attn,
        "concepts": {"image": img_c, "text": txt_c, "names": union, "cooccurrence": cooc},
        "neighbours": neighbour_graph(rt, text.texts[0], txt_info.get("neighbour"), img_info.get("neighbour")),
    }


def neighbour_graph(rt, query: str, text_nb, image_nb) -> dict:
    """Nodes and edges: the query text and its nearest corpus captions with their photos, and the
    result photo with its nearest corpus photos and their captions."""
    nodes = [{"id": "query", "kind": "query", "label": query, "weight": 1.0, "path": None},
             {"id": "result", "kind": "image", "label": "result photo", "weight": 1.0, "path": None}]
    edges = []
    caps, imgs = rt.corpus_captions, rt.corpus_images
    cap_img = rt.model.mem_cap_img.cpu().numpy()
    seen = {"query", "result"}

    def add(node_id, kind, label, weight):
        if node_id not in seen:
            seen.add(node_id)
            nodes.append({"id": node_id, "kind": kind, "label": label, "weight": float(weight), "path": None})

    if text_nb is not None:
        for w, j in zip(text_nb[0][0].tolist()[:5], text_nb[1][0].tolist()[:5]):
            add(f"t{j}", "text", caps[j] if j < len(caps) else f"caption {j}", w)
            edges.append({"source": "query", "target": f"t{j}", "weight": float(w)})
            i = int(cap_img[j])
            add(f"i{i}", "image", f"training photo {i}", 1.0)
            edges.append({"source": f"t{j}", "target": f"i{i}", "weight": 1.0})
    if image_nb is not None:
        for w, i in zip(image_nb[0][0].tolist()[:5], image_nb[1][0].tolist()[:5]):
            add(f"i{i}", "image", f"training photo {i}", w)
            edges.append({"source": "result", "target": f"i{i}", "weight": float(w)})
            js = np.nonzero(cap_img == i)[0][:1]
            for j in js.tolist():
                add(f"t{j}", "text", caps[j] if j < len(caps) else f"caption {j}", 1.0)
                edges.append({"source": f"i{i}", "target": f"t{j}", "weight": 1.0})
    return {"nodes": nodes, "edges": edges}
