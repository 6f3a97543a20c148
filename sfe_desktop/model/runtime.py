"""The loaded model on a device: the one object the index, search, CLI and GUI use.

See docs/architecture.md for the contract (ImageFeatures, TextFeatures, Explanation)."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import Cancelled, CheckpointError, SFEError
from ..settings import default_checkpoint, pick_device
from .checkpoint import checkpoint_id, load_checkpoint
from ..explanation import Comparison, Explanation
from .config import ModelConfig
from .corpus import Corpus
from .explain import (class_map, crop_windows, explain_pair, image_classes, region_map, shared_class_scores,
                      shared_classes, window_coverage)
from .features import (ImageFeatures, TextFeatures, candidate_hubness, encode_images_lower, encode_texts,
                       index_vectors)
from .fusion import Fusion, nearest_cosine
from .ranking import Ranked, rerank_depth, step2_scores
from .sfe import SFEModel

log = logging.getLogger(__name__)


def unique_captions(captions: Sequence[str]) -> tuple[list[str], list[int]]:
    """Captions without repeats (case, spacing and a final full stop ignored): (texts, source indices)."""
    seen, texts, keep = set(), [], []
    for i, c in enumerate(captions):
        text = " ".join(c.split()).rstrip(" .")
        key = text.lower()
        if text and key not in seen:
            seen.add(key)
            texts.append(text)
            keep.append(i)
    return texts, keep


class SFERuntime:
    """A model ready for inference; every method takes and returns plain numpy data."""

    def __init__(self, model: SFEModel, meta: dict, device: torch.device, ckpt_id: str, source: Path | None = None,
                 corpus: Corpus | None = None):
        self.model = model.to(device).eval()
        self.meta = meta  # the checkpoint's config.json
        self.corpus = corpus or Corpus()
        self.device = device
        self.checkpoint_id = ckpt_id
        self.source = source
        self.cfg: ModelConfig = model.cfg
        self.dim = self.cfg.dim
        # width of an indexed vector: Step 1, and with a bridge the bridge vector and the hubness
        self.vector_dim = self.cfg.dim + (self.cfg.bridge_dim + 1 if self.cfg.bridge_dim else 0)
        self.image_size = self.cfg.image_size
        self.rerank_k = rerank_depth(self.cfg)  # Step-1 candidates a search re-scores with Step 2 by default
        with torch.no_grad():
            probe = model.image.lower(torch.zeros(1, 3, self.image_size, self.image_size, device=device))
            h, w = model.image.upper(probe).shape[-2:]
            self._concepts = model.concept_embeddings()
        self.grid = (int(h), int(w))
        self.concept_names: list[str] = list(meta.get("concepts", []))
        self.class_names: list[str] = list(meta.get("classes", []))  # the label bridge's ImageNet classes
        self._corpus: tuple[list[str], np.ndarray] | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, checkpoint: str | Path | None = None, device: str = "auto") -> "SFERuntime":
        path = Path(checkpoint) if checkpoint else default_checkpoint()
        dev = pick_device(device)
        model, meta, corpus = load_checkpoint(path, "cpu")
        try:
            ckpt = checkpoint_id(path)
        except OSError as exc:
            raise CheckpointError(f"{path}: cannot read ({exc})") from exc
        return cls(model, meta, dev, ckpt, path, corpus)

    # ------------------------------------------------------------------ encoding
    def preprocess(self, image) -> torch.Tensor:
        from ..data.transforms import to_tensor

        return to_tensor(image, self.image_size, self.model.image.normalise)

    def load_image(self, path) -> torch.Tensor:
        from ..data.images import load_image

        return self.preprocess(load_image(path, min_side=self.image_size))

    @torch.no_grad()
    def encode_images(self, batch: torch.Tensor, logits: bool = False, hub: bool = True) -> ImageFeatures:
        """Step-1 features of a batch of preprocessed images (B, 3, S, S); ``logits``: with every patch's
        ImageNet logits (what an explanation's class maps need); ``hub`` False: without their hubness (photos
        that are queries, not candidates)."""
        lower = self.model.image.lower(batch.to(self.device))
        return encode_images_lower(self.model, lower, concepts=self._concepts, logits=logits, hub=hub)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256, bridge: bool = True,
                     hub: bool = False) -> TextFeatures:
        """Step-1 features of texts (an empty text is read as "."); ``bridge`` False: without bridge vectors
        (for texts whose bridge vectors are known, as the caption bank's are); ``hub``: with their hubness, for
        texts that photos search (a caption bank)."""
        return encode_texts(self.model, texts, batch_size, concepts=self._concepts, bridge=bridge, hub=hub)

    # ------------------------------------------------------------------ fusion and confidence
    @property
    def fusion(self) -> Fusion | None:
        """How Step 1/2 and the label bridge mix (None: a checkpoint without a calibrated bridge)."""
        return self.model.fusion if self.model.cfg.bridge_dim else None

    def nearest_memory(self, vectors: np.ndarray, kind: str) -> np.ndarray:
        """(N,) cosine of Step-1 vectors of ``kind`` ("image"/"text") to their nearest training-memory item."""
        return nearest_cosine(vectors, self.model.mem_img if kind == "image" else self.model.mem_txt)

    def query_weights(self, feats: ImageFeatures | TextFeatures, kind: str,
                      candidates_nearest: np.ndarray | None = None) -> np.ndarray:
        """(Q,) the bridge's weight for each query (:meth:`Fusion.query_weights`); zeros without fusion."""
        if self.fusion is None:
            return np.zeros(len(feats))
        return self.fusion.query_weights(self.nearest_memory(feats.global_, kind), kind, candidates_nearest)

    def query_vectors(self, feats: ImageFeatures | TextFeatures, weights: np.ndarray, hub: bool = True) -> np.ndarray:
        """(Q, vector_dim) query vectors whose inner product with indexed vectors is the fused Step-1 score;
        ``hub`` False: without the candidates' hubness (photos searching photos)."""
        f = self.fusion
        if feats.bridge is None:
            return feats.global_.astype(np.float32)
        if f is None:  # a bridge but no fusion fitted: the model's score alone
            return index_vectors(feats.global_, np.zeros_like(feats.bridge))
        return f.query_vectors(feats.global_, feats.bridge, weights, hub)

    def fused_step2(self, step2: np.ndarray, query_bridge: np.ndarray | None, candidates_bridge: np.ndarray | None,
                    weight: float, candidates_hub: np.ndarray | None = None, step1: np.ndarray | None = None
                    ) -> np.ndarray:
        """Step-2 scores of one query's candidates, fused with the bridge and their hubness as Step 1 is, and
        with the fusion's share of their fused Step-1 scores ``step1`` (what a search ranks them by)."""
        if self.fusion is None or query_bridge is None or candidates_bridge is None:
            return step2
        return self.fusion.step2(step2, candidates_bridge @ query_bridge, weight, candidates_hub, step1)

    def confidence(self, step1: np.ndarray, familiarity: np.ndarray | float, weight: float, kind: str = "image",
                   ranked: Ranked | None = None) -> np.ndarray | None:
        """P(true match) of pairs with fused Step-1 scores ``step1`` of a query with bridge weight ``weight`` against
        candidates of ``kind``, whose text has cosine ``familiarity`` to its nearest training caption; None when the
        checkpoint has no calibration. With the search's ``ranked`` list (whose ``step1`` is ``step1``): a pair
        that Step 2 re-scored reads its fused Step-2 score, so the confidence falls as the shown order does, and a
        pair below them never reads surer than the least sure of them."""
        conf_of = self.model.confidence
        if conf_of is None:
            return None
        f = self.fusion or Fusion()
        conf = conf_of(f.standardise(step1, weight, kind), familiarity)
        if ranked is None or ranked.head is None or not ranked.head.any() or not conf_of.has_step2:
            return conf
        head = ranked.head
        step2 = conf_of(f.standardise(ranked.score, weight, kind, step=2), familiarity, step=2)
        return np.where(head, step2, np.minimum(conf, step2[head].min()))

    def pair_confidence(self, text: TextFeatures, image: ImageFeatures) -> float | None:
        """The match confidence of the pair (``text[0]``, ``image[0]``) as a search that re-scores it with Step 2
        gives it; None without a calibration."""
        w = self.query_weights(text[0], "text")
        score = self.query_vectors(text[0], w)[0] @ image[0].index_vectors()[0]
        ranked = None
        if self.rerank_k:
            query_bridge = None if text.bridge is None else text.bridge[0]
            step2 = self.fused_step2(self.rerank_text(text, image[0]), query_bridge, image[0].bridge, float(w[0]),
                                     image[0].hub, np.array([score]))
            ranked = Ranked(np.zeros(1, np.int64), np.asarray(step2, np.float64).reshape(1), np.array([score]),
                            np.ones(1, bool))
        conf = self.confidence(np.array([score]), self.nearest_memory(text.global_[:1], "text"), float(w[0]),
                               ranked=ranked)
        return None if conf is None else float(conf[0])

    # ------------------------------------------------------------------ Step 2
    def rerank_text(self, text: TextFeatures, images: ImageFeatures) -> np.ndarray:
        """Step-2 scores of one text against K images: (K,)."""
        rows = np.arange(len(images))
        return step2_scores(self.model, text[0], images, np.zeros_like(rows), rows)

    def rerank_image(self, image: ImageFeatures, texts: TextFeatures) -> np.ndarray:
        """Step-2 scores of one image against K texts: (K,)."""
        rows = np.arange(len(texts))
        return step2_scores(self.model, texts, image[0], rows, np.zeros_like(rows))

    # ------------------------------------------------------------------ corpus
    def caption_corpus(self, progress: Callable[[int, int], None] | None = None,
                       cancel: threading.Event | None = None) -> tuple[list[str], np.ndarray]:
        """The bundled caption corpus (duplicates removed) and its index vectors (Step-1 vectors, with the bridge
        vectors beside them when the model has a bridge).

        The memory bank already holds every training caption's base vector, so only the cross-modal cues run for
        the Step-1 vectors (seconds, no text tower); a corpus without a matching bank is encoded. The bridge
        vectors need the pretrained text tower on every caption (about a minute for 30,000 captions on 2 cores;
        callers cache the result on disk)."""
        if self._corpus is None:
            texts, keep = unique_captions(self.corpus.captions)
            bank = self.model.mem_txt
            parts = []
            with torch.no_grad():
                for a in range(0, len(keep), 2048):
                    rows = keep[a:a + 2048]
                    if bank.shape[0] == len(self.corpus.captions):
                        parts.append(self.model._enhance(bank[torch.as_tensor(rows)], "text").vec.float().cpu().numpy())
                    else:
                        parts.append(self.encode_texts([self.corpus.captions[i] for i in rows]).global_)
                    if progress:
                        progress(min(a + 2048, len(keep)), len(keep))
            vecs = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
            if self.model.cfg.bridge_dim:
                vecs = index_vectors(vecs, self.bridge_vectors(texts, progress, cancel),
                                     candidate_hubness(self.model, vecs, "text"))
            self._corpus = (texts, vecs.astype(np.float32))
        return self._corpus

    @torch.no_grad()
    def bridge_vectors(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None,
                       cancel: threading.Event | None = None, batch_size: int = 256) -> np.ndarray:
        """(N, r) label-bridge vectors of texts: the pretrained text tower alone (not the trained model).
        ``cancel`` set: :class:`~sfe_desktop.errors.Cancelled` between batches."""
        bridge, parts = self.model.bridge, []
        for a in range(0, len(texts), batch_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled("computing the caption corpus's bridge vectors was cancelled")
            enc = self.model.text.tokenize([t if t.strip() else "." for t in texts[a:a + batch_size]])
            ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
            parts.append(bridge.text_vectors(bridge.sentence(self.model.text.lower(ids, mask), mask)).float().cpu().numpy())
            if progress:
                progress(min(a + batch_size, len(texts)), len(texts))
        return np.concatenate(parts) if parts else np.zeros((0, self.model.cfg.bridge_dim), np.float32)

    # ------------------------------------------------------------------ explanations
    def pair_scores(self, text: TextFeatures, images: ImageFeatures) -> np.ndarray:
        """(K,) scores of ``text[0]`` against K images as a search ranks them: Step 2, with the label bridge fused
        in when the model has one."""
        weight = float(self.query_weights(text[0], "text")[0])
        bridge = None if text.bridge is None else text.bridge[0]
        return np.asarray(self.fused_step2(self.rerank_text(text[0], images), bridge, images.bridge, weight,
                                           images.hub))

    def region(self, text: TextFeatures, pixels: torch.Tensor) -> np.ndarray:
        """(N,) where ``text[0]`` matches a preprocessed photo (3, S, S): the scores of its windows
        (:data:`~sfe_desktop.model.explain.WINDOWS`), each encoded on its own, spread over the grid cells. A
        window is not a search candidate: its score leaves out the hubness correction, a per-window offset that
        does not depend on the text (:class:`~sfe_desktop.model.fusion.Fusion`)."""
        scores = self.pair_scores(text, self.encode_images(crop_windows(pixels), hub=False))
        return region_map(scores, window_coverage(self.grid))

    def explain(self, text: TextFeatures, image: ImageFeatures, photo: str | None = None,
                photo_label: str = "result photo", grounding: str = "regions",
                pixels: torch.Tensor | None = None) -> Explanation:
        """Why ``image[0]`` matches ``text[0]``; ``photo``: the image's file, when it has one; ``pixels``: the
        preprocessed photo (3, S, S), read from ``photo`` when not given. The class maps need the photo's patch
        logits (taken from ``image`` when it has them; an index keeps none) and "regions" grounding needs the
        pixels; a photo that cannot be read now leaves the attention rows alone."""
        image = image[0]
        need_logits = self.model.bridge is not None and image.logits is None
        if pixels is None and photo and (need_logits or grounding == "regions"):
            try:
                pixels = self.load_image(photo)
            except SFEError:  # the file went away or changed into a non-photo
                log.info("no class maps or regions for %s: it cannot be read now", photo)
        if pixels is not None and need_logits:
            logits = self.encode_images(pixels[None], logits=True).logits
            image = ImageFeatures(image.global_, image.patches, image.bridge, logits, image.hub)
        region = self.region(text[0], pixels) if grounding == "regions" and pixels is not None else None
        return explain_pair(self.model, text[0], image, grid=self.grid, vocabulary=self.concept_names,
                            corpus=self.corpus, photo=photo, photo_label=photo_label, class_names=self.class_names,
                            grounding=grounding, region=region)

    def compare(self, query: ImageFeatures, result: ImageFeatures, query_photo=None, result_photo=None) -> Comparison:
        """Why two photos are similar (:class:`~sfe_desktop.explanation.Comparison`); the class lists need each
        photo's patch logits, taken from the features or read from the photo files (left empty for a photo that
        cannot be read now)."""
        logits = []
        for feats, photo in ((query, query_photo), (result, result_photo)):
            if feats.logits is None and photo:
                try:
                    feats = self.encode_images(self.load_image(photo)[None], logits=True)
                except SFEError:
                    log.info("no classes for %s: it cannot be read now", photo)
            logits.append(None if feats.logits is None or not self.class_names else feats.logits[0])
        cosine = float(np.dot(query.global_[0], result.global_[0]))
        if any(x is None for x in logits):
            return Comparison(cosine, [], [], [])
        shared = shared_classes(logits[0], logits[1], self.class_names)
        maps = [None, None]
        if shared:  # where each photo shows the class both show most
            one = torch.zeros(1, logits[0].shape[-1])
            one[0, int(shared_class_scores(logits[0], logits[1]).argmax())] = 1.0
            maps = [class_map(torch.as_tensor(np.asarray(x, np.float32)), one)[0].numpy() for x in logits]
        return Comparison(cosine, shared, image_classes(logits[0], self.class_names),
                          image_classes(logits[1], self.class_names), tuple(self.grid) if shared else None, *maps)

    def explain_photo(self, photo, text: str, grounding: str = "regions") -> tuple[Explanation, float | None]:
        """(explanation, match confidence) of a photo file and a text, without an index: the photo is encoded
        here. Raises :class:`~sfe_desktop.errors.ImageReadError` for a file that is not a readable photo."""
        pixels = self.load_image(photo)
        image = self.encode_images(pixels[None], logits=True)
        texts = self.encode_texts([text])
        return (self.explain(texts, image, photo=str(photo), photo_label="photo", grounding=grounding, pixels=pixels),
                self.pair_confidence(texts, image))


def tiny_runtime(seed: int = 0, device: str = "cpu", **changes) -> SFERuntime:
    """A small random-initialised runtime with a synthetic corpus: for tests, no packages needed. The same
    ``seed`` gives the same weights on every device."""
    from .build import build_corpus_state

    torch.manual_seed(seed)
    cfg = ModelConfig.tiny(**changes)
    model = SFEModel(cfg, pretrained=False).eval()
    colours = ["red", "green", "blue", "yellow", "black", "white"]
    things = ["dog", "cat", "car", "tree", "house", "boat", "ball"]
    rng = np.random.default_rng(seed)
    captions, cap_img, images = [], [], []
    for i in range(24):
        c, t = colours[i % len(colours)], things[i % len(things)]
        images.append(f"synthetic_{i:03d}.jpg")
        for v in ("a {c} {t}", "the {t} is {c}", "a {c} {t} near a {o}"):
            captions.append(v.format(c=c, t=t, o=things[rng.integers(len(things))]))
            cap_img.append(i)
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.rand(len(images), 3, cfg.image_size, cfg.image_size, generator=gen)
    meta, corpus = build_corpus_state(model, captions, cap_img, images, image_batches=[pixels],
                                      calibrate_on_corpus=True)
    return SFERuntime(model, meta, torch.device(device), f"tiny-{seed}", corpus=corpus)
