"""Query side of a collection: text->images, image->texts, image->images and explanations.

A :class:`Searcher` reads the index through its :class:`~sfe_desktop.search.state.IndexState` and ranks with
:mod:`sfe_desktop.model.ranking`; it keeps only what it computed from the model (query features, caption bank).
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Callable, TypeVar

import numpy as np
import torch
from PIL import Image

from ..catalog import FileRow
from ..catalog.metadata import file_time
from ..data.images import load_image, to_rgb
from ..errors import SFEError
from ..explanation import Comparison, Explanation
from ..model.features import ImageFeatures, TextFeatures, split_index_vectors
from ..model.ranking import Ranked, rank_one, rerank_depth
from ..model.runtime import SFERuntime
from .state import IndexState
from .browse import by_date
from .corpus_cache import caption_corpus
from .types import (EXIF, FILE_TIME, IMAGE_TO_IMAGE, IMAGE_TO_TEXT, LIBRARY, MAX_TOP, PIXELS_QUERY, TEXT_TO_IMAGE,
                    Result)

log = logging.getLogger(__name__)

CACHE_SIZE = 32
NOVELTY_SAMPLE = 2000  # photos sampled to tell how far a collection is from the training photos
T = TypeVar("T")


def _check_top(top: int, rerank_k: int | None = None) -> None:
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= MAX_TOP:
        raise SFEError(f"the number of results must be from 1 to {MAX_TOP} (got {top!r})")
    if rerank_k is not None and (isinstance(rerank_k, bool) or not isinstance(rerank_k, int) or rerank_k < 0):
        raise SFEError(f"the re-ranking depth must be 0 or more (got {rerank_k!r})")


def photo_result(state: IndexState, row: FileRow, rank: int, score: float, step1: float, direction: str,
                 query: str, confidence: float | None = None) -> Result:
    """The :class:`Result` of an indexed photo: its path, size and date taken (EXIF, else the file's time)."""
    date, source = (row.date_taken, EXIF) if row.date_taken else (file_time(row.mtime_ns), FILE_TIME)
    return Result(rank, score, step1, direction, query, path=state.abs_path(row.path), width=row.width,
                  height=row.height, date_taken=date, date_source=source,
                  confidence=None if confidence is None else round(float(confidence), 4))


class Searcher:
    """Searches one :class:`IndexState` with one runtime; thread-safe."""

    def __init__(self, state: IndexState, runtime: SFERuntime):
        self.state = state
        self.runtime = runtime
        self._lock = threading.Lock()
        self._cache: OrderedDict = OrderedDict()
        self._captions: tuple[int, list[str], np.ndarray] | None = None
        self._nearest: tuple[int, np.ndarray] | None = None

    def clear_cache(self) -> None:
        """Forget the cached query features (benchmarks time the text encoding of every query)."""
        with self._lock:
            self._cache.clear()

    # -- features --------------------------------------------------------------------------------
    def _cached(self, key, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = make()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return value

    def text(self, query: str) -> TextFeatures:
        return self._cached(("text", query), lambda: self.runtime.encode_texts([query]))

    def _encode_image(self, image: Image.Image) -> ImageFeatures:
        with torch.inference_mode():
            return self.runtime.encode_images(self.runtime.preprocess(image)[None], hub=False)

    def photo(self, photo) -> tuple[ImageFeatures, FileRow | None, str]:
        """(features of one photo, its catalog row or None, query label): stored when the photo is indexed and
        unchanged, else encoded (and cached by path)."""
        if isinstance(photo, Image.Image):
            return self._encode_image(to_rgb(photo)), None, PIXELS_QUERY
        label = os.path.abspath(os.fspath(photo))
        row = self.state.row_of(label)
        if row is not None:
            return self.state.features([row]), row, label
        feats = self._cached(("image", label), lambda: self._encode_image(load_image(label, self.runtime.image_size)))
        return feats, None, label

    def caption_bank(self, cancel=None) -> tuple[list[str], np.ndarray]:
        """The bundled caption corpus plus the user's captions, with their index vectors (Step-1 vectors, with the
        bridge vectors beside them when the model has a bridge: as wide as the corpus's). ``cancel``: a
        ``threading.Event`` that stops computing them (:class:`~sfe_desktop.errors.Cancelled`)."""
        version = self.state.caption_version
        with self._lock:
            if self._captions is not None and self._captions[0] == version:
                return self._captions[1], self._captions[2]
        texts, vectors = caption_corpus(self.runtime, cancel)
        texts, vectors = list(texts), [np.asarray(vectors, dtype=np.float32)]
        known = set(texts)
        user = [t for t in self.state.captions() if t not in known and not known.add(t)]
        for start in range(0, len(user), 256):
            vectors.append(np.asarray(self.runtime.encode_texts(user[start:start + 256], hub=True).index_vectors(),
                                      dtype=np.float32))
        bank = (texts + user, np.concatenate(vectors) if len(vectors) > 1 else vectors[0])
        with self._lock:
            self._captions = (version, *bank)
        return bank

    def _rerank_k(self, override: int | None) -> int:
        return self.runtime.rerank_k if override is None else rerank_depth(self.runtime.cfg, override)

    def _photos(self, hits: list[tuple[FileRow, float]], ranked: Ranked, direction: str, query: str,
                confidence: np.ndarray | None = None) -> list[Result]:
        return [photo_result(self.state, hits[i][0], n + 1, float(score), float(step1), direction, query,
                             None if confidence is None else confidence[n])
                for n, (i, score, step1) in enumerate(zip(ranked.index, ranked.score, ranked.step1))]

    def library(self) -> list[Result]:
        """Every indexed photo, newest first by date taken, then by name (direction :data:`LIBRARY`, no score)."""
        photos = by_date([photo_result(self.state, row, 0, 0.0, 0.0, LIBRARY, "") for row in self.state.indexed()])
        for rank, result in enumerate(photos, 1):
            result.rank = rank
        return photos

    def collection_nearest(self) -> np.ndarray:
        """Nearest-memory cosines of (a sample of) the collection's photos: how far the collection is from the
        training photos, which weighs the label bridge in text searches. Cached until the photo count changes."""
        if self.runtime.fusion is None:
            return np.zeros(0, np.float32)
        count = self.state.vector_count()[0]
        with self._lock:
            if self._nearest is not None and self._nearest[0] == count:
                return self._nearest[1]
        g = self.state.sample_vectors(NOVELTY_SAMPLE)[:, :self.runtime.dim]
        near = self.runtime.nearest_memory(g, "image")
        with self._lock:
            self._nearest = (count, near)
        return near

    # -- searches --------------------------------------------------------------------------------
    def search_text(self, query: str, top: int, rerank_k: int | None) -> list[Result]:
        _check_top(top, rerank_k)
        self.state.check()
        query = " ".join(query.split())
        if not query:
            raise SFEError("the query is empty")
        k = self._rerank_k(rerank_k)
        rt = self.runtime
        text = self.text(query)
        w = float(rt.query_weights(text, "text", self.collection_nearest())[0])
        hits = self.state.nearest(rt.query_vectors(text, [w]), max(top, k))  # by fused Step 1, ties by path

        def rescore(c: np.ndarray) -> np.ndarray:
            feats = self.state.features([hits[i][0] for i in c])
            return rt.fused_step2(rt.rerank_text(text[0], feats), _bridge(text), feats.bridge, w, feats.hub,
                                  np.array([hits[i][1] for i in c]))

        ranked = rank_one(np.array([s for _, s in hits]), rescore, k, top)
        familiar = rt.nearest_memory(text.global_, "text")[0]
        return self._photos(hits, ranked, TEXT_TO_IMAGE, query, rt.confidence(ranked.step1, familiar, w, ranked=ranked))

    def similar(self, photo, top: int) -> list[Result]:
        _check_top(top)
        self.state.check()
        feats, own, label = self.photo(photo)
        # by the model's own cosine (bridge weight 0, no hubness): the figure the app shows as how alike they are
        query = self.runtime.query_vectors(feats, np.zeros(1), hub=False)
        hits = [(r, s) for r, s in self.state.nearest(query, top + 1) if own is None or r.id != own.id]
        ranked = rank_one(np.array([s for _, s in hits]), lambda c: np.zeros(0), 0, top)  # Step 1 only
        spread = self.runtime.fusion.sigma_step1 if self.runtime.fusion is not None else 1.0
        return self._photos(hits, replace(ranked, step1=ranked.step1 * spread), IMAGE_TO_IMAGE, label)

    def search_image(self, photo, top: int, rerank_k: int | None) -> list[Result]:
        _check_top(top, rerank_k)
        self.state.check()
        feats, _, label = self.photo(photo)
        texts, vectors = self.caption_bank()
        if not texts:
            return []
        k = self._rerank_k(rerank_k)
        rt = self.runtime
        w = float(rt.query_weights(feats, "image")[0])
        step1 = vectors @ rt.query_vectors(feats, [w])[0]
        n = min(len(texts), max(top, k))
        idx = np.argpartition(-step1, n - 1)[:n] if n < len(texts) else np.arange(len(texts))
        idx = sorted(idx.tolist(), key=lambda i: (-step1[i], texts[i]))  # candidates by Step 1, ties by text

        def rescore(c: np.ndarray) -> np.ndarray:
            rows = [idx[i] for i in c]
            caps = rt.encode_texts([texts[i] for i in rows], bridge=False)  # the bank holds their bridge vectors
            _, bridge, hub = split_index_vectors(vectors[rows], rt.dim)
            return rt.fused_step2(rt.rerank_image(feats[0], caps), _bridge(feats), bridge, w, hub, step1[rows])

        ranked = rank_one(step1[idx], rescore, k, top)
        chosen = np.asarray([idx[i] for i in ranked.index], dtype=np.int64)
        conf = (rt.confidence(ranked.step1, rt.nearest_memory(vectors[chosen, :rt.dim], "text"), w, "text", ranked)
                if len(chosen) else None)
        return [Result(n + 1, float(score), float(s1), IMAGE_TO_TEXT, label, caption=texts[idx[i]],
                       confidence=None if conf is None else round(float(conf[n]), 4))
                for n, (i, score, s1) in enumerate(zip(ranked.index, ranked.score, ranked.step1))]

    def explain(self, result: Result) -> Explanation:
        self.state.check()
        if result.direction == TEXT_TO_IMAGE:
            row = self.state.row_of(result.path) if result.path else None
            if row is None:
                raise SFEError(f"{result.path} is no longer indexed; search again")
            return self.runtime.explain(self.text(result.query)[0], self.state.features([row])[0], photo=result.path)
        if result.direction == IMAGE_TO_TEXT:
            if result.query == PIXELS_QUERY:
                raise SFEError("explanations need the query photo's path")
            feats, _, _ = self.photo(result.query)
            return self.runtime.explain(self.text(result.caption)[0], feats[0],
                                        photo=os.path.abspath(os.fspath(result.query)), photo_label="query photo")
        raise SFEError("explanations exist for text->image and image->text results only; "
                       "similar photos are compared (Collection.compare)")

    def compare(self, result: Result) -> Comparison:
        """Why a similar-photos result is similar to its query photo."""
        self.state.check()
        if result.direction != IMAGE_TO_IMAGE or not result.path:
            raise SFEError("comparisons exist for similar-photos results only")
        row = self.state.row_of(result.path)
        if row is None:
            raise SFEError(f"{result.path} is no longer indexed; search again")
        query = None if result.query == PIXELS_QUERY else os.path.abspath(os.fspath(result.query))
        if query is None:
            raise SFEError("comparisons need the query photo's path")
        feats, _, _ = self.photo(query)
        return self.runtime.compare(feats[0], self.state.features([row])[0], query, result.path)


def _bridge(feats: ImageFeatures | TextFeatures) -> np.ndarray | None:
    """The first row's bridge vector (None without a bridge)."""
    return None if feats.bridge is None else feats.bridge[0]
