"""Fill a model's corpus state (concepts, co-occurrence, memory bank, prototypes) from a training
corpus, given the frozen lower-layer features of its images and captions."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .corpus import Corpus, caption_concepts, cooccurrence, mine_concepts, prototypes
from .features import cached_text_lower, encode_images_lower, encode_texts_lower
from .sfe import SFEModel


@torch.no_grad()
def init_concepts(model: SFEModel, captions: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """Mine the concept vocabulary, embed each concept word with the text tower, set the co-occurrence
    graph. Returns (vocabulary padded to n_concepts, concepts of each caption)."""
    n = model.cfg.n_concepts
    vocab = mine_concepts(captions, n)
    per_caption = caption_concepts(captions, vocab)
    if not model.cfg.use_patch:
        return vocab, per_caption
    emb = torch.zeros(n, model.text.out_channels)
    if vocab:
        enc = model.text.tokenize(vocab)
        mask = enc["attention_mask"].to(model.device)
        h = model.text(enc["input_ids"].to(model.device), mask)
        m = mask.unsqueeze(-1).float()
        emb[: len(vocab)] = ((h * m).sum(1) / m.sum(1)).cpu()
    model.concepts.concept_text = emb.to(model.device)
    model.concepts.adjacency = cooccurrence(per_caption, n).to(model.device)
    return vocab, per_caption


TINY_CLASSES = ["dog", "cat", "car", "tree", "house", "boat", "ball", "bird", "flower", "cup"]


def class_names(model: SFEModel) -> list[str]:
    """Names of the image tower's classifier outputs: ImageNet's 1,000 (as torchvision ships them, offline) for the
    EfficientNet-Lite towers, ten stand-ins for the tiny test tower."""
    if model.cfg.image_backbone == "tiny":
        return list(TINY_CLASSES)
    from torchvision.models import ResNet50_Weights  # the category names only; no weights are loaded

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


@torch.no_grad()
def init_bridge(model: SFEModel, names: Sequence[str] | None = None) -> list[str]:
    """Embed the class prompts with the pretrained text tower and store them (and their basis) in the bridge.
    Returns the class names (the checkpoint keeps them)."""
    from .bridge import PROMPT

    names = list(names) if names is not None else class_names(model)
    if not model.cfg.bridge_dim:
        return names
    enc = model.text.tokenize([PROMPT.format(n) for n in names])
    ids, mask = enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)
    modes = [(m, m.training) for part in (model.text, model.bridge) for m in part.modules()]
    try:  # as at inference: a model fresh from its constructor is in training mode, and dropout would blur them
        for m, _ in modes:
            m.training = False
        model.bridge.set_prompts(model.bridge.sentence(model.text.lower(ids, mask), mask))
    finally:
        for m, was in modes:
            m.training = was
    return names


def base_vectors(model: SFEModel, image_lower, text_lower: dict, batch_size: int = 256):
    """Base (pre cross-modal cue) Step-1 vectors of every image and caption of the corpus."""
    img = encode_images_lower(model, image_lower, batch_size, enhanced=False).global_
    txt = encode_texts_lower(model, text_lower["mask"], cached_text_lower(text_lower), batch_size, enhanced=False).global_
    return torch.from_numpy(img), torch.from_numpy(txt)


@torch.no_grad()
def refresh_memory(model: SFEModel, image_lower, text_lower: dict, cap_img: Sequence[int],
                   cap_concepts: Sequence[Sequence[int]], leave_half_out: bool = False) -> None:
    """Recompute the memory bank and prototypes with the model's current weights. With
    ``leave_half_out`` also build two prototype sets from disjoint halves of the images (a sample of
    half h is enhanced with the prototypes of the other half), so no sample reads its own pair."""
    was_training = model.training
    model.eval()
    img, txt = base_vectors(model, image_lower, text_lower)
    model.set_memory(img, txt, torch.as_tensor(np.array(cap_img)))
    n = model.cfg.n_concepts
    model.set_prototypes(*prototypes(img, txt, cap_img, cap_concepts, n))
    model.train_protos = None
    if leave_half_out:
        half = np.arange(len(img)) % 2
        dev = model.device
        model.train_protos = [tuple(t.to(dev) for t in prototypes(img, txt, cap_img, cap_concepts, n, half == h))
                              for h in (0, 1)]
    model.train(was_training)


def build_corpus_state(model: SFEModel, captions: Sequence[str], cap_img: Sequence[int], images: Sequence[str],
                       image_batches=None, image_lower=None, text_lower: dict | None = None,
                       calibrate_on_corpus: bool = False) -> tuple[dict, Corpus]:
    """Set every corpus buffer of ``model``; return the checkpoint metadata (the concept vocabulary) and the
    corpus. ``calibrate_on_corpus``: fit the fusion and confidence on the corpus itself (a model with no
    validation split: the synthetic test model)."""
    from ..data.features import text_lower_features

    vocab, per_caption = init_concepts(model, captions)
    classes = init_bridge(model)
    if image_lower is None:
        with torch.no_grad():
            image_lower = torch.cat([model.image.lower(b.to(model.device)).cpu() for b in image_batches]).numpy()
    if text_lower is None:
        text_lower = text_lower_features(model.text, captions)
    refresh_memory(model, image_lower, text_lower, cap_img, per_caption)
    meta = {"concepts": vocab, "classes": classes}
    if calibrate_on_corpus:
        from .calibrate import calibrate
        from .features import encode_dataset, encode_texts

        images_f, texts_f = encode_dataset(model, image_lower, text_lower)
        meta["calibration"] = calibrate(model, images_f, texts_f, cap_img, lambda t: encode_texts(model, t))
    return meta, Corpus(list(captions), [int(i) for i in cap_img], list(images))
