"""The on-disk corpus cache keeps vectors as wide as the runtime indexes them (Step 1, plus a label bridge's)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from sfe_desktop.search.corpus_cache import cache_files, caption_corpus


@pytest.mark.parametrize("dim,vector_dim", [(4, None), (4, 7)])
def test_vectors_of_any_index_width_are_read_back_not_recomputed(tmp_path, monkeypatch, dim, vector_dim):
    monkeypatch.setenv("SFE_DATA_DIR", str(tmp_path / "data"))
    width = vector_dim or dim
    texts = ["a dog", "two cats", "a red car"]
    vectors = np.random.default_rng(0).standard_normal((3, width)).astype(np.float32)
    calls = []
    runtime = SimpleNamespace(source=tmp_path, checkpoint_id=f"ckpt-{width}", dim=dim, vector_dim=vector_dim,
                              caption_corpus=lambda cancel=None: calls.append(1) or (texts, vectors))
    first = caption_corpus(runtime)
    second = caption_corpus(runtime)
    assert calls == [1]  # the second came from the files
    assert first[0] == second[0] == texts and np.array_equal(second[1], vectors)
    _, vectors_file = cache_files(runtime.checkpoint_id)
    np.save(vectors_file, vectors[:, :2])  # a file of another width is not trusted: computed again
    assert np.array_equal(caption_corpus(runtime)[1], vectors) and calls == [1, 1]


def test_computing_the_bridge_vectors_of_the_corpus_stops_when_cancelled():
    """A window closing while the caption bank is prepared does not wait for the whole corpus."""
    import threading

    import pytest

    from sfe_desktop.errors import Cancelled
    from sfe_desktop.model.runtime import tiny_runtime

    runtime = tiny_runtime(0)
    assert runtime.model.cfg.bridge_dim  # the bridge vectors are what takes long
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        runtime.caption_corpus(cancel=stop)
    texts, vectors = runtime.caption_corpus()  # nothing half-made was kept
    assert vectors.shape == (len(texts), runtime.vector_dim)
