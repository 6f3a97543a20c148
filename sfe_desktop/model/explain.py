"""Compute the explanation of one text-image pair from the model (:class:`sfe_desktop.explanation.Explanation`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..explanation import QUERY_NODE, RESULT_NODE, Concept, Concepts, Explanation, GraphEdge, GraphNode, NeighbourGraph
from . import class_groups
from .corpus import Corpus
from .features import ImageFeatures, TextFeatures
from .sfe import SFEModel


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


def _piece_words(tokens: Sequence[str]) -> list[int]:
    """For each token, the index of the word :func:`merge_wordpieces` puts it in (-1: a special token)."""
    out, n = [], -1
    for t in tokens:
        if t in ("[CLS]", "[SEP]", "[PAD]"):
            out.append(-1)
            continue
        if not (t.startswith("##") and n >= 0):
            n += 1
        out.append(n)
    return out


def _top_concepts(names: Sequence[str], weights: torch.Tensor, idx: torch.Tensor, limit: int = 8) -> list[Concept]:
    out = [Concept(names[i], float(w)) for w, i in zip(weights.tolist(), idx.tolist()) if i < len(names) and w > 0]
    return out[:limit]


def _concepts_from_attention(names: Sequence[str], attn: torch.Tensor | None, limit: int = 8):
    if attn is None or not names:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    mean = attn.mean(0)[: len(names)]
    k = min(limit, mean.numel())
    return mean.topk(k)


# A word grounds its row in the class maps as far as it names an ImageNet class: by the cosine of its sentence
# embedding to the nearest class prompt, from none at GROUND_FROM to full at GROUND_TO. Person and scene words
# ("man", "girl", "people", "field") stay below 0.35 (ImageNet has no person class); objects ("dog", "ball",
# "car", "pizza", "umbrella") reach 0.5 and more.
GROUND_FROM, GROUND_TO = 0.35, 0.5
# "regions" (the app's): the "mixed" rows weighted by where the whole text matches the photo (the scores of
# windows of the photo, each encoded on its own); "mixed": each word's Step-2 attention row mixed with its class
# map; "attention" and "classes" alone, for comparison (benchmarks/grounding.py measures each).
GROUNDING_MODES = ("regions", "mixed", "attention", "classes")

# The windows of "regions" grounding as (top, left, side) fractions of the photo: nine half-size windows a
# quarter apart and four of 0.7 of the side. A window's weight is softmax(z / REGION_TEMPERATURE) of its score's
# z-score among the windows.
WINDOWS = tuple((i / 4, j / 4, 0.5) for i in range(3) for j in range(3)) + \
    tuple((i * 0.3, j * 0.3, 0.7) for i in range(2) for j in range(2))
REGION_TEMPERATURE = 0.25


def crop_windows(pixels: torch.Tensor, windows=WINDOWS) -> torch.Tensor:
    """(K, 3, S, S): each window of a preprocessed photo (3, S, S) cut out and resized to the full input size."""
    size = pixels.shape[-1]
    crops = []
    for top, left, side in windows:
        y0, x0, n = round(top * size), round(left * size), max(1, round(side * size))
        crop = pixels[None, :, y0:y0 + n, x0:x0 + n]
        crops.append(F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False))
    return torch.cat(crops)


def window_coverage(grid: tuple[int, int], windows=WINDOWS) -> np.ndarray:
    """(K, N): the share of each grid cell's area inside each window."""
    h, w = grid
    rows = (np.arange(h) / h, (np.arange(h) + 1) / h)
    cols = (np.arange(w) / w, (np.arange(w) + 1) / w)

    def overlap(lo, hi, a, b):
        return np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0, None) * len(lo)

    out = [np.outer(overlap(*rows, top, top + side), overlap(*cols, left, left + side)).ravel()
           for top, left, side in windows]
    return np.stack(out).astype(np.float32)


def region_map(scores: np.ndarray, coverage: np.ndarray, temperature: float = REGION_TEMPERATURE) -> np.ndarray:
    """(N,) where the text matches: the windows' coverage weighted by softmax of their scores' z-scores,
    summing to 1 (uniform when every window scores the same)."""
    s = np.asarray(scores, np.float64)
    z = (s - s.mean()) / s.std() if s.std() > 1e-9 else np.zeros_like(s)
    w = np.exp((z - z.max()) / temperature)
    heat = (w / w.sum()) @ np.asarray(coverage, np.float64)
    return (heat / heat.sum()).astype(np.float32)


def class_map(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(R, N) maps of class assignments ``weights`` (R, classes) over patches with ImageNet ``logits``
    (N, classes): the weighted patch logits above their lowest value, each map summing to 1."""
    raw = weights @ logits.t()
    raw = raw - raw.min(dim=1, keepdim=True).values
    total = raw.sum(1, keepdim=True)
    return torch.where(total > 0, raw / total.clamp(min=1e-12), torch.full_like(raw, 1.0 / raw.shape[1]))


def _sentences(model: SFEModel, texts: Sequence[str]) -> torch.Tensor:
    """Pretrained MiniLM sentence embeddings of ``texts`` (the bridge's text side)."""
    enc = model.text.tokenize(list(texts))
    ids, mask = enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)
    return model.bridge.sentence(model.text.lower(ids, mask), mask)


# A word's candidate classes: the WORD_CANDIDATES class prompts nearest to it, weighted by softmax(cos /
# WORD_TEMPERATURE). Sentence embeddings of one word lean on spelling ("dog" is nearest "dogsled", "sand" nearest
# "sandal"), so among its candidates a word names the classes the photo shows: the weights times the photo's class
# probabilities (mean over patches), when those put at least SHOWN_EVIDENCE on the candidates (twice a uniform
# classifier's 0.001); else the text weights alone.
WORD_CANDIDATES, WORD_TEMPERATURE, SHOWN_EVIDENCE = 25, 0.05, 0.002


def photo_word_classes(cos: torch.Tensor, logits: torch.Tensor,
                       families: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
    """(W, classes) what each word names in this photo, from the words' cosines to the class prompts (W, classes)
    and the photo's patch logits (N, classes); each row sums to 1. A word's candidates are its
    :data:`WORD_CANDIDATES` nearest prompts, or its family's classes when ``families[w]`` lists them
    (:mod:`~sfe_desktop.model.class_groups`: "dog" names its breeds, not "dogsled"), all equally likely a priori;
    the photo's class probabilities then pick among them when it shows them at all."""
    k = min(WORD_CANDIDATES, cos.shape[1])
    top = cos.topk(k, dim=1)
    prior = torch.zeros_like(cos).scatter(1, top.indices, torch.softmax(top.values / WORD_TEMPERATURE, dim=1))
    for row, members in enumerate(families or []):
        if len(members):
            prior[row] = 0.0
            prior[row, torch.as_tensor(list(members), device=cos.device)] = 1.0 / len(members)
    shown = torch.softmax(logits.float(), dim=-1).mean(0)[None, :] * prior
    evidence = shown.sum(1, keepdim=True)  # the prior-weighted mean class probability: 1/classes is chance
    return torch.where(evidence >= SHOWN_EVIDENCE, shown / evidence.clamp(min=1e-12), prior)


def word_class_maps(model: SFEModel, words: Sequence[str], logits: np.ndarray, class_names: Sequence[str],
                    mode: str = "regions") -> tuple[np.ndarray, np.ndarray, list[Concept | None]]:
    """The class map of the ImageNet classes each word names, and how much of the word's row it makes up.
    Returns ((W, N) maps summing to 1, (W,) the map's share of each word's row, the class each word names)."""
    if mode not in GROUNDING_MODES:
        raise ValueError(f"grounding mode {mode!r} is not one of {', '.join(GROUNDING_MODES)}")
    if not len(words):
        return np.zeros((0, len(logits)), np.float32), np.zeros(0, np.float32), []
    sent = _sentences(model, words)
    cos = sent @ model.bridge.prompts.t()
    families = [class_groups.members(w, class_names) for w in words]
    assign = photo_word_classes(cos, torch.as_tensor(np.asarray(logits, np.float32), device=model.device), families)
    maps = class_map(torch.as_tensor(np.asarray(logits, np.float32), device=model.device), assign).cpu().numpy()
    share = np.clip((cos.max(1).values.cpu().numpy() - GROUND_FROM) / (GROUND_TO - GROUND_FROM), 0.0, 1.0)
    top = assign.max(1)
    named = [Concept(class_names[int(i)], float(w)) if b > 0 and int(i) < len(class_names) else None
             for b, w, i in zip(share.tolist(), top.values.tolist(), top.indices.tolist())]
    for k, members in enumerate(families):  # a family the photo does not single out a member of: the family itself
        if len(members) > 1 and named[k] is not None and named[k].weight <= 1.0 / len(members) + 1e-6:
            named[k] = Concept(class_groups.family(words[k]), 1.0)
    share = {"regions": share, "mixed": share, "attention": np.zeros_like(share), "classes": np.ones_like(share)}[mode]
    return maps.astype(np.float32), share.astype(np.float32), named


def image_classes(logits: np.ndarray, class_names: Sequence[str], limit: int = 5) -> list[Concept]:
    """The photo's most probable ImageNet classes (the classifier on the pooled grid: the mean patch logits)."""
    probs = torch.softmax(torch.as_tensor(np.asarray(logits, np.float32)).mean(0), dim=-1)
    top = probs.topk(min(limit, probs.numel()))
    return [Concept(class_names[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())
            if i < len(class_names)]


def shared_class_scores(logits_a: np.ndarray, logits_b: np.ndarray, floor: float = 0.02) -> torch.Tensor:
    """(classes,) the geometric mean of two photos' class probabilities, 0 where either is below ``floor``."""
    def probs(logits):
        return torch.softmax(torch.as_tensor(np.asarray(logits, np.float32)).mean(0), dim=-1)

    pa, pb = probs(logits_a), probs(logits_b)
    return torch.where(torch.minimum(pa, pb) >= floor, (pa * pb).sqrt(), torch.zeros_like(pa))


def shared_classes(logits_a: np.ndarray, logits_b: np.ndarray, class_names: Sequence[str], limit: int = 5,
                   floor: float = 0.02) -> list[Concept]:
    """The ImageNet classes two photos both show: by the geometric mean of their probabilities (as
    :func:`image_classes` computes them), each at least ``floor`` in both photos."""
    both = shared_class_scores(logits_a, logits_b, floor)
    top = both.topk(min(limit, both.numel()))
    return [Concept(class_names[i], float(w)) for w, i in zip(top.values.tolist(), top.indices.tolist())
            if w > 0 and i < len(class_names)]


@torch.no_grad()
def explain_pair(model: SFEModel, text: TextFeatures, image: ImageFeatures, *, grid: tuple[int, int],
                 vocabulary: Sequence[str], corpus: Corpus, photo: str | None = None,
                 photo_label: str = "result photo", class_names: Sequence[str] = (),
                 grounding: str = "regions", region: np.ndarray | None = None) -> Explanation:
    """Explain the pair (``text[0]``, ``image[0]``). ``vocabulary``: the concept names; ``corpus``: the training
    corpus the neighbour graph shows; ``photo`` and ``photo_label``: the file and the graph label of the image
    side of the pair. With a bridge and the image's patch logits (``image.logits``), each word's row is grounded
    in the class maps of the ImageNet classes (``class_names``) it names; with "regions" grounding (the measured
    choice) and ``region`` (:func:`region_map`, (N,)), each row is then weighted by where the whole text matches.
    "mixed", "attention" or "classes" alone are for comparison."""
    if grounding not in GROUNDING_MODES:
        raise ValueError(f"grounding mode {grounding!r} is not one of {', '.join(GROUNDING_MODES)}")
    m, dev, names = model, model.device, list(vocabulary)
    words = torch.from_numpy(text.words[:1].astype(np.float32)).to(dev)
    mask = torch.from_numpy(text.mask[:1]).to(dev)
    patches = torch.from_numpy(image.patches[:1].astype(np.float32)).to(dev)
    g_t = torch.from_numpy(text.global_[:1]).to(dev)
    g_i = torch.from_numpy(image.global_[:1]).to(dev)
    score, w2p, omega = m.pair_scores(words, mask, patches, g_t, g_i, explain=True)
    step1 = float((g_t * g_i).sum())
    n_words = int(mask.sum())
    if w2p is None:  # Step 2 off: plain cosine attention for the heatmap, words weighted alike
        w2p = torch.softmax(10 * F.normalize(words, dim=-1) @ F.normalize(patches, dim=-1).transpose(1, 2), dim=-1)
        omega = mask.float() / mask.float().sum(1, keepdim=True)
    tokens = text.tokens[0] if text.tokens else []
    rows = w2p[0, :n_words].cpu().numpy()
    omega_w = omega[0, :n_words].cpu().numpy()
    classes, named, share = [], [], np.zeros(0, np.float32)
    if m.bridge is not None and image.logits is not None and tokens:
        # each word piece's row mixed with its word's class map; the pair's heatmap from the mixed rows
        word_list, _ = merge_wordpieces(tokens[:n_words], rows)
        maps, share, named = word_class_maps(m, word_list, image.logits[0], class_names, grounding)
        for piece, word in enumerate(_piece_words(tokens[:n_words])):
            if word >= 0:
                rows[piece] = (1 - share[word]) * rows[piece] + share[word] * maps[word]
        classes = image_classes(image.logits[0], class_names)
    if grounding == "regions" and region is not None:
        weighted = rows * np.asarray(region, np.float32)[None]
        total = weighted.sum(1, keepdims=True)
        rows = np.where(total > 0, weighted / np.maximum(total, 1e-12), rows).astype(np.float32)
    # the pair's heatmap: how much each patch feeds the word side of the score (words by their weight)
    heatmap = (omega_w[:, None] * rows).sum(0).astype(np.float32)
    word_list, attn = merge_wordpieces(tokens[:n_words], rows)

    # concepts: instance-level activations (or patch/word-to-concept attention when that cue is off)
    img_base = F.normalize(m.img_pool(patches), dim=-1)
    txt_base = F.normalize(m.txt_pool(words, mask), dim=-1)
    img_info = m._enhance(img_base, "image").info
    txt_info = m._enhance(txt_base, "text").info
    concepts = m.concept_embeddings()
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
    union = list(dict.fromkeys([c.name for c in txt_c] + [c.name for c in img_c]))
    index = {n: i for i, n in enumerate(names)}
    if m.cfg.use_patch and union:
        ids = torch.tensor([index[n] for n in union], device=dev)
        cooc = m.concepts.adjacency[ids][:, ids].cpu().numpy().astype(np.float32)
        np.fill_diagonal(cooc, 0.0)
    else:
        cooc = np.zeros((len(union), len(union)), np.float32)

    query = text.texts[0] if text.texts else " ".join(word_list)
    graph = neighbour_graph(m, corpus, query, txt_info.get("neighbour"), img_info.get("neighbour"), photo, photo_label)
    return Explanation(score=float(score[0]), step1=step1, words=word_list, grid=(int(grid[0]), int(grid[1])),
                       attention=attn, heatmap=heatmap, concepts=Concepts(img_c, txt_c, union, cooc), neighbours=graph,
                       photo=photo, classes=classes, word_classes=named, grounding=share)


def neighbour_graph(model: SFEModel, corpus: Corpus, query: str, text_nb, image_nb, photo: str | None = None,
                    photo_label: str = "result photo") -> NeighbourGraph:
    """Nodes and edges: the query text and its nearest corpus captions with their photos, and the
    result photo with its nearest corpus photos and their captions."""
    nodes = [GraphNode(QUERY_NODE, "query", query, 1.0), GraphNode(RESULT_NODE, "image", photo_label, 1.0, photo)]
    edges: list[GraphEdge] = []
    caps = corpus.captions
    cap_img = model.mem_cap_img.cpu().numpy()
    seen = {QUERY_NODE, RESULT_NODE}

    def add(node_id: str, kind: str, label: str, weight: float) -> None:
        if node_id not in seen:
            seen.add(node_id)
            nodes.append(GraphNode(node_id, kind, label, float(weight)))

    def caption(j: int) -> str:
        return caps[j] if j < len(caps) else f"caption {j}"

    if text_nb is not None:
        for w, j in zip(text_nb[0][0].tolist()[:5], text_nb[1][0].tolist()[:5]):
            add(f"t{j}", "text", caption(j), w)
            edges.append(GraphEdge(QUERY_NODE, f"t{j}", float(w)))
            i = int(cap_img[j])
            add(f"i{i}", "image", f"training photo {i}", 1.0)
            edges.append(GraphEdge(f"t{j}", f"i{i}", 1.0))
    if image_nb is not None:
        for w, i in zip(image_nb[0][0].tolist()[:5], image_nb[1][0].tolist()[:5]):
            add(f"i{i}", "image", f"training photo {i}", w)
            edges.append(GraphEdge(RESULT_NODE, f"i{i}", float(w)))
            for j in np.nonzero(cap_img == i)[0][:1].tolist():
                add(f"t{j}", "text", caption(j), 1.0)
                edges.append(GraphEdge(f"i{i}", f"t{j}", 1.0))
    return NeighbourGraph(nodes, edges)
