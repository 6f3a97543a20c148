"""Query side of :class:`Collection`: text->images, image->texts, image->images, explanations."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from ..catalog import FileRow
from ..catalog.db import OK
from ..data.images import load_image
from ..errors import IndexStateError, SFEError
from ..model.ranking import rank_one, rerank_depth
from .types import IMAGE_TO_IMAGE, IMAGE_TO_TEXT, TEXT_TO_IMAGE, Result

log = logging.getLogger(__name__)

CACHE_SIZE = 32


def _image_features(global_: np.ndarray, patches: np.ndarray):
    from ..model.runtime import ImageFeatures  # the model package is heavy; load on first query

    return ImageFeatures(global_=global_, patches=patches)


class Retrieval:
    """Mixin holding the search methods; the attributes come from :class:`Collection`."""

    _cache: OrderedDict

    def _check(self) -> None:
        if self.stale:
            raise IndexStateError(self.stale)

    def _cached(self, key, make):
        with self.lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = make()
        with self.lock:
            self._cache[key] = value
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return value

    def _text(self, query: str):
        return self._cached(("text", query), lambda: self.runtime.encode_texts([query]))

    def _abs(self, rel: bytes) -> str:
        return os.fsdecode(os.path.join(self.photo_dir_b, rel))

    def _row_of(self, path: str) -> FileRow | None:
        """Catalog row of ``path`` when it lies in the collection and is unchanged since indexing."""
        p = os.path.abspath(os.fspath(path))
        for base in {str(self.photo_dir), os.path.realpath(self.photo_dir)}:
            rel = os.path.relpath(p, base)
            if rel.startswith(os.pardir):
                continue
            row = self.catalog.by_path(os.fsencode(rel).replace(os.sep.encode(), b"/"))
            if row is not None and row.status == OK:
                try:
                    st = os.stat(p)
                except OSError:
                    return None
                if st.st_size == row.size and st.st_mtime_ns == row.mtime_ns:
                    return row
        return None

    def _stored(self, rows: list[FileRow]):
        vec = np.asarray([r.vec_row for r in rows], dtype=np.int64)
        with self.lock:  # not during a reset (re-encode), which empties the row files
            try:
                return _image_features(self.store.read_globals(vec), self.store.read_patches(vec))
            except IndexError as exc:  # the rows were dropped by a reset after they were looked up
                raise SFEError("the index was reset while searching; search again") from exc

    def _photo(self, photo):
        """(ImageFeatures of one image, its catalog row or None, query label)."""
        if isinstance(photo, Image.Image):
            return self._encode_image(photo.convert("RGB")), None, "<image>"
        label = os.path.abspath(os.fspath(photo))
        row = self._row_of(label)
        if row is not None:
            return self._stored([row]), row, label
        feats = self._cached(("image", label), lambda: self._encode_image(load_image(label, self.runtime.image_size)))
        return feats, None, label

    def _encode_image(self, image: Image.Image):
        with torch.inference_mode():
            return self.runtime.encode_images(self.runtime.preprocess(image)[None])

    def _nearest(self, query: np.ndarray, k: int) -> list[tuple[FileRow, float]]:
        """Step-1 neighbours that are indexed in the catalog now, best first (stable order)."""
        with self.lock:  # faiss ids and catalog rows from the same state (no reset in between)
            scores, ids = self.vindex.search(query, k)
            rows = self.catalog.by_ids(ids[0].tolist())
        hits = [(rows[i], float(s)) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i in rows]
        return sorted(((r, s) for r, s in hits if r.status == OK), key=lambda h: (-h[1], h[0].path))

    def _image_result(self, rank, score, step1, direction, query, row: FileRow) -> Result:
        return Result(rank, float(score), float(step1), direction, query, path=self._abs(row.path),
                      width=row.width, height=row.height, date_taken=row.date_taken)

    # -- public ----------------------------------------------------------------------------------
    def search_text(self, query: str, top: int = 20, rerank_k: int | None = None) -> list[Result]:
        """Photos matching ``query``: the Step-1 top ``max(top, rerank_k)`` from faiss, the first ``rerank_k``
        re-ranked by Step 2 (hits beyond it follow with their Step-1 score); ``rerank_k`` defaults to the
        checkpoint's (:mod:`sfe_desktop.model.ranking`)."""
        self._check()
        query = " ".join(query.split())
        if not query:
            raise SFEError("the query is empty")
        k = self._rerank_k(rerank_k)
        text = self._text(query)
        hits = self._nearest(text.global_, max(top, k))  # sorted by Step 1, ties by path
        ranked = rank_one(np.array([s for _, s in hits]),
                          lambda c: self.runtime.rerank_text(text[0], self._stored([hits[i][0] for i in c])), k, top)
        return [self._image_result(n + 1, sc, s1, TEXT_TO_IMAGE, query, hits[i][0])
                for n, (i, sc, s1) in enumerate(zip(ranked.index, ranked.score, ranked.step1))]

    def _rerank_k(self, override: int | None) -> int:
        return self.runtime.rerank_k if override is None else rerank_depth(self.runtime.cfg, override)

    def similar(self, photo, top: int = 20) -> list[Result]:
        """Photos of the collection most similar to ``photo`` (inside the collection or not): Step 1 only."""
        self._check()
        feats, own, label = self._photo(photo)
        hits = [(r, s) for r, s in self._nearest(feats.global_, top + 1) if own is None or r.id != own.id]
        ranked = rank_one(np.array([s for _, s in hits]), lambda c: np.zeros(0), 0, top)
        return [self._image_result(n + 1, sc, s1, IMAGE_TO_IMAGE, label, hits[i][0])
                for n, (i, sc, s1) in enumerate(zip(ranked.index, ranked.score, ranked.step1))]

    def _caption_bank(self) -> tuple[list[str], np.ndarray]:
        with self.lock:
            if self._captions_cache is not None:
                return self._captions_cache
        texts, vectors = self.runtime.caption_corpus()
        texts, vectors = list(texts), [np.asarray(vectors, dtype=np.float32)]
        known = set(texts)
        user = [t for t, _ in self.catalog.captions() if t not in known and not known.add(t)]
        for start in range(0, len(user), 256):
            vectors.append(np.asarray(self.runtime.encode_texts(user[start:start + 256]).global_, dtype=np.float32))
        bank = (texts + user, np.concatenate(vectors) if len(vectors) > 1 else vectors[0])
        with self.lock:
            self._captions_cache = bank
        return bank

    def search_image(self, photo, top: int = 20, rerank_k: int | None = None) -> list[Result]:
        """Captions (bundled corpus plus user captions) describing ``photo``: the Step-1 top
        ``max(top, rerank_k)``, the first ``rerank_k`` re-ranked by Step 2 (default: the checkpoint's)."""
        self._check()
        feats, _, label = self._photo(photo)
        texts, vectors = self._caption_bank()
        if not texts:
            return []
        k = self._rerank_k(rerank_k)
        step1 = vectors @ np.asarray(feats.global_[0], dtype=np.float32)
        n = min(len(texts), max(top, k))
        idx = np.argpartition(-step1, n - 1)[:n] if n < len(texts) else np.arange(len(texts))
        idx = sorted(idx.tolist(), key=lambda i: (-step1[i], texts[i]))  # candidates by Step 1, ties by text
        ranked = rank_one(step1[idx], lambda c: self.runtime.rerank_image(
            feats[0], self.runtime.encode_texts([texts[idx[i]] for i in c])), k, top)
        return [Result(n + 1, sc, s1, IMAGE_TO_TEXT, label, caption=texts[idx[i]])
                for n, (i, sc, s1) in enumerate(zip(ranked.index, ranked.score, ranked.step1))]

    def explain(self, result: Result) -> dict:
        """Explanation (see docs/architecture.md) of one text->image or image->text result, from
        the cached query features and the stored patch features."""
        self._check()
        if result.direction == TEXT_TO_IMAGE:
            row = self._row_of(result.path) if result.path else None
            if row is None:
                raise SFEError(f"{result.path} is no longer indexed; search again")
            explanation = self.runtime.explain(self._text(result.query)[0], self._stored([row])[0])
            return _with_photo_path(explanation, result.path, "result photo")
        if result.direction == IMAGE_TO_TEXT:
            if result.query == "<image>":
                raise SFEError("explanations need the query photo's path")
            feats, _, _ = self._photo(result.query)
            explanation = self.runtime.explain(self._text(result.caption)[0], feats[0])
            return _with_photo_path(explanation, os.path.abspath(os.fspath(result.query)), "query photo")
        raise SFEError("explanations exist for text->image and image->text results only")


def _with_photo_path(explanation: dict, path: str, label: str) -> dict:
    """Give the graph node of the explained photo (id ``result``, the image side of the pair: the hit of a
    text->image search, the query photo of an image->text search) its file path, so a click opens it."""
    graph = explanation.get("neighbours")
    if graph:
        nodes = [dict(node) for node in graph.get("nodes") or []]
        for node in nodes:
            if node.get("id") == "result" and node.get("kind") == "image":
                node["path"] = path
                node["label"] = label
        explanation["neighbours"] = {**graph, "nodes": nodes}
    return explanation
