"""The same work on CUDA as on the CPU (skipped where there is no CUDA device; run on a GPU machine)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from collection_fixtures import data_dir, photos  # noqa: F401

from sfe_desktop.model.runtime import SFERuntime, tiny_runtime
from sfe_desktop.search import Collection

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def pair():
    return tiny_runtime(0, device="cpu"), tiny_runtime(0, device="cuda")


def test_runtime_on_cuda_matches_the_cpu(pair, photos):
    cpu, gpu = pair
    assert gpu.device.type == "cuda" and next(gpu.model.parameters()).is_cuda
    batch = torch.stack([cpu.load_image(p) for p in sorted(photos.glob("*.jpg"))])
    with torch.inference_mode():
        a, b = cpu.encode_images(batch), gpu.encode_images(batch)
    np.testing.assert_allclose(a.global_, b.global_, atol=2e-4)
    np.testing.assert_allclose(a.patches, b.patches, atol=2e-3)
    ta, tb = cpu.encode_texts(["a red dog", "two cats on a boat"]), gpu.encode_texts(["a red dog", "two cats on a boat"])
    np.testing.assert_allclose(ta.global_, tb.global_, atol=2e-4)
    np.testing.assert_allclose(cpu.rerank_text(ta[0], a), gpu.rerank_text(tb[0], b), atol=2e-3)
    np.testing.assert_allclose(cpu.rerank_image(a[0], ta), gpu.rerank_image(b[0], tb), atol=2e-3)
    ea, eb = cpu.explain(ta[0], a[0]), gpu.explain(tb[0], b[0])
    assert ea.words == eb.words
    np.testing.assert_allclose(ea.attention, eb.attention, atol=2e-3)
    json.loads(eb.to_json())  # plain data, no CUDA tensors inside


def test_collection_indexes_and_searches_on_cuda(pair, photos, tmp_path):
    cpu, gpu = pair
    with Collection.open(photos, gpu, tmp_path / "gpu-index") as col:
        assert col.batch_size == 64
        summary = col.index()
        assert summary.indexed == 8 and col.info()["device"].startswith("cuda")
        hits = col.search_text("a red dog", top=5)
        captions = col.search_image(photos / "p1.jpg", top=3)
        similar = col.similar(photos / "p3.jpg", top=3)
        explanation = col.explain(hits[0])
    with Collection.open(photos, cpu, tmp_path / "cpu-index") as ref:
        ref.index()
        ref_hits = ref.search_text("a red dog", top=5)
        assert [h.path for h in hits] == [h.path for h in ref_hits]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in ref_hits], atol=2e-3)
        assert [c.caption for c in captions] == [c.caption for c in ref.search_image(photos / "p1.jpg", top=3)]
        assert [s.path for s in similar] == [s.path for s in ref.similar(photos / "p3.jpg", top=3)]
    assert explanation.words and explanation.neighbours.nodes


def test_train_on_cuda_and_load_the_checkpoint_on_cpu(tmp_path):
    from synthetic import make_dataset

    from sfe_desktop.data.datasets import load_karpathy
    from sfe_desktop.model.config import ModelConfig
    from sfe_desktop.train.evaluate import evaluate_dataset
    from sfe_desktop.train.loop import TrainConfig, Trainer

    path = make_dataset(tmp_path / "data")
    train = load_karpathy(path, tmp_path / "data" / "images", "train")
    val = load_karpathy(path, tmp_path / "data" / "images", "val")
    torch.manual_seed(0)
    trainer = Trainer(ModelConfig.tiny(), train, val, TrainConfig(epochs=4, batch_size=16, lr=3e-3, patience=99),
                      torch.device("cuda"), None, tmp_path / "ck", log_fn=lambda s: None)
    result = trainer.fit()
    hist = result["history"]
    assert all(np.isfinite(h["loss"]) for h in hist) and hist[-1]["loss"] < hist[0]["loss"]
    rt = SFERuntime.load(tmp_path / "ck", "cpu")  # a CUDA-trained checkpoint opens on a CPU-only machine
    assert rt.device.type == "cpu"
    scores = evaluate_dataset(rt.model, val)
    assert scores["step1"]["rsum"] > 0


def test_cli_train_and_evaluate_with_device_cuda(tmp_path):
    from synthetic import make_dataset

    from sfe_desktop.cli import main

    path = make_dataset(tmp_path / "data")
    ck, out = tmp_path / "ck", tmp_path / "eval.json"
    assert main(["train", "--dataset", str(path), "--image-backbone", "tiny", "--epochs", "1", "--batch-size", "16",
                 "--out", str(ck), "--device", "cuda", "--cache-dir", str(tmp_path / "cache")]) == 0
    for _ in range(2):  # the second run reads the feature cache the first one wrote
        assert main(["evaluate", "--dataset", str(path), "--split", "val", "--checkpoint", str(ck), "--json", str(out),
                     "--device", "cuda", "--cache-dir", str(tmp_path / "cache")]) == 0
        assert json.loads(out.read_text())["rerank"]["rsum"] > 0


def test_gpu_jpeg_decoding_matches_the_cpu_path(photos):
    """nvjpeg + torch resizing against libjpeg + Pillow: close, not bit-equal (another IDCT, another resizer)."""
    from sfe_desktop.data.gpu_decode import exif_orientation, gpu_decoder
    from sfe_desktop.data.images import load_image
    from sfe_desktop.data.transforms import to_tensor

    gpu = gpu_decoder("cuda", 64, "tflite")
    if gpu is None:
        pytest.skip("torchvision cannot decode JPEGs on this CUDA device (nvjpeg)")
    paths = sorted(photos.glob("*.jpg"))
    datas = [p.read_bytes() for p in paths]
    out = gpu.decode(datas, [exif_orientation(d) for d in datas])
    for p, image in zip(paths, out):
        ref = to_tensor(load_image(p, 64), 64, "tflite")
        assert image is not None and image.tensor.is_cuda and image.tensor.shape == ref.shape
        diff = (image.tensor.cpu() - ref).abs()
        assert float(diff.mean()) < 4 / 128 and float(diff.max()) < 40 / 128  # a few 1/255 steps on average
        assert image.thumb.dtype == np.uint8 and image.thumb.shape[2] == 3
    assert gpu.decode([b"\xff\xd8\xff broken"], [1]) == [None]  # left to the CPU path, which says why


def test_collection_indexed_with_gpu_decoding_ranks_as_the_cpu(pair, photos, tmp_path):
    from sfe_desktop.data.gpu_decode import gpu_decoder

    if gpu_decoder("cuda", 64, "tflite") is None:
        pytest.skip("no nvjpeg here")
    cpu, gpu = pair
    with Collection.open(photos, gpu, tmp_path / "gpu") as col, Collection.open(photos, cpu, tmp_path / "cpu") as ref:
        assert col.index().indexed == 8 and ref.index().indexed == 8
        a, b = col.search_text("a red dog", top=8), ref.search_text("a red dog", top=8)
        np.testing.assert_allclose(sorted(h.score for h in a), sorted(h.score for h in b), atol=2e-2)
        assert (tmp_path / "gpu" / "thumbs").exists()
