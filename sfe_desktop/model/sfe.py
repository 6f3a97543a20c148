"""The SFE network: two backbone towers, Step-1 cues per modality, Step-2 re-ranker.

With every cue and Step 2 switched off the same class is the plain two-tower baseline (projection +
attention/max pooling on the same backbones, same loss).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import ImageBackbone, TextBackbone
from .bridge import LabelBridge
from .fusion import HUB_BETA, Confidence, Fusion
from .config import ModelConfig
from .cues import AttentionPool, ConceptCue, ConceptGraph, InstanceCue, NeighbourCue
from .reranker import Reranker

# Buffers whose size depends on the training corpus; a checkpoint sets their shape on load.
HUB_BANK = 6000  # the most memory items a hubness is measured against (the cost of the bank is paid once)
CORPUS_BUFFERS = ("mem_img", "mem_txt", "mem_cap_img", "proto_img", "proto_txt", "proto_valid")


@dataclass
class Local:
    feats: torch.Tensor               # (B, N, d) enhanced local features
    mask: torch.Tensor | None         # (B, N) for words, None for patches
    concept_attn: torch.Tensor | None  # (B, N, K) patch/word-to-concept weights


@dataclass
class Global:
    vec: torch.Tensor                 # (B, d) L2-normalised Step-1 vector
    base: torch.Tensor                # (B, d) L2-normalised vector before the cross-modal cues
    info: dict                        # instance/neighbour weights and indices (for explanations)


class SFEModel(nn.Module):
    def __init__(self, cfg: ModelConfig, pretrained: bool = True):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.image = ImageBackbone(cfg.image_backbone, cfg.image_size, cfg.image_trainable_blocks, pretrained)
        self.text = TextBackbone(cfg.text_backbone, cfg.text_trainable_layers, cfg.max_length, pretrained)
        for p in self.parameters():
            p.requires_grad_(False)
        if cfg.image_trainable_blocks > 0:
            for p in self.image.upper_parameters():
                p.requires_grad_(True)
        if cfg.text_trainable_layers > 0:
            for p in self.text.upper_parameters():
                p.requires_grad_(True)
        self.img_proj = nn.Linear(self.image.out_channels, d)
        self.txt_proj = nn.Linear(self.text.out_channels, d)
        self.img_pool = AttentionPool(d, gpo=cfg.pool == "gpo")
        self.txt_pool = AttentionPool(d, gpo=cfg.pool == "gpo")
        if cfg.use_patch:
            self.concepts = ConceptGraph(cfg.n_concepts, self.text.out_channels, d)
            self.img_concept = ConceptCue(d)
            self.txt_concept = ConceptCue(d)
        if cfg.use_instance:
            self.img_instance = InstanceCue(d, cfg.instance_top)
            self.txt_instance = InstanceCue(d, cfg.instance_top)
        if cfg.use_neighbour:
            self.img_neighbour = NeighbourCue(d, cfg.neighbours_k)
            self.txt_neighbour = NeighbourCue(d, cfg.neighbours_k)
        if cfg.use_step2:
            self.reranker = Reranker(d)
        if cfg.bridge_dim:  # frozen copies of the pretrained tops, taken before any fine-tuned weight is loaded
            img, txt = self.image, self.text
            top = nn.Sequential(*img.blocks[img.split:], img.head) if img.n_upper_blocks else nn.Identity()
            self.bridge = LabelBridge(top, img.classifier, txt.layers[txt.split:], txt.run_top,
                                      txt.out_channels, cfg.bridge_dim, cfg.bridge_centered)
        self.fusion: Fusion | None = None  # how Step 1/2 and the bridge mix (set by calibration or a checkpoint)
        self.confidence: Confidence | None = None  # P(true match) of a result (likewise)
        self.register_buffer("mem_img", torch.zeros(0, d))
        self.register_buffer("mem_txt", torch.zeros(0, d))
        self.register_buffer("mem_cap_img", torch.zeros(0, dtype=torch.long))
        self.register_buffer("proto_img", torch.zeros(cfg.n_concepts, d))
        self.register_buffer("proto_txt", torch.zeros(cfg.n_concepts, d))
        self.register_buffer("proto_valid", torch.zeros(cfg.n_concepts, dtype=torch.bool))
        self.train_protos: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
        self._partner_cache: torch.Tensor | None = None
        self._hub_banks: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.img_proj.weight.device

    # ----------------------------------------------------------------- corpus state
    def set_memory(self, mem_img: torch.Tensor, mem_txt: torch.Tensor, cap_img: torch.Tensor) -> None:
        dev = self.device
        self.mem_img = F.normalize(mem_img.float(), dim=-1).to(dev)
        self.mem_txt = F.normalize(mem_txt.float(), dim=-1).to(dev)
        self.mem_cap_img = cap_img.long().to(dev)
        self._partner_cache = None
        self._hub_banks = {}

    def set_prototypes(self, proto_img, proto_txt, valid) -> None:
        dev = self.device
        self.proto_img, self.proto_txt = proto_img.float().to(dev), proto_txt.float().to(dev)
        self.proto_valid = valid.bool().to(dev)

    def image_partners(self) -> torch.Tensor:
        """Mean caption vector of each memory image (the image's cross-modal partner)."""
        if self._partner_cache is None or self._partner_cache.shape[0] != self.mem_img.shape[0]:
            sums = torch.zeros_like(self.mem_img).index_add_(0, self.mem_cap_img, self.mem_txt.float())
            self._partner_cache = F.normalize(sums, dim=-1)
        return self._partner_cache

    @torch.no_grad()
    def hubness(self, vectors: torch.Tensor, kind: str, beta: float = HUB_BETA, chunk: int = 2048) -> torch.Tensor:
        """(N,) how much each Step-1 vector of ``kind`` ("image" or "text") is a *hub*, near every query: the
        soft maximum (log-mean-exp at ``beta``) of its cosine to the Step-1 vectors of the other modality's training
        memory, the bank of likely queries. Zeros without a memory. Subtracted from a candidate's score (querybank
        normalisation), it keeps a few photos or captions from topping every list (:class:`~.fusion.Fusion`)."""
        other = "text" if kind == "image" else "image"
        memory = self.mem_txt if other == "text" else self.mem_img
        if memory.shape[0] == 0 or vectors.shape[0] == 0:
            return torch.zeros(vectors.shape[0])
        bank = self._hub_banks.get(other)
        if bank is None:  # every memory item up to HUB_BANK, evenly spaced beyond (30,000 captions: every 5th)
            rows = memory[::-(-memory.shape[0] // HUB_BANK)].float()
            bank = torch.cat([self._enhance(rows[a:a + chunk], other).vec for a in range(0, rows.shape[0], chunk)])
            self._hub_banks[other] = bank
        out = []
        for a in range(0, vectors.shape[0], chunk):
            s = beta * (vectors[a:a + chunk].to(bank.device).float() @ bank.t())
            out.append((torch.logsumexp(s, 1) - math.log(bank.shape[0])) / beta)
        return torch.cat(out).cpu()

    # ----------------------------------------------------------------- Step 1, local
    def concept_embeddings(self) -> torch.Tensor | None:
        return self.concepts() if self.cfg.use_patch else None

    def image_local(self, lower: torch.Tensor, concepts: torch.Tensor | None = None) -> Local:
        grid = self.image.upper(lower)
        x = self.img_proj(grid.flatten(2).transpose(1, 2))
        attn = None
        if self.cfg.use_patch:
            x, attn = self.img_concept(x, self.concept_embeddings() if concepts is None else concepts)
        return Local(x, None, attn)

    def text_local(self, hidden: torch.Tensor, mask: torch.Tensor, concepts: torch.Tensor | None = None) -> Local:
        mask = mask.bool()
        w = self.txt_proj(self.text.upper(hidden, mask))
        attn = None
        if self.cfg.use_patch:
            w, attn = self.txt_concept(w, self.concept_embeddings() if concepts is None else concepts)
        return Local(w, mask, attn)

    # ----------------------------------------------------------------- Step 1, global
    def _instance(self, module, g, own_idx: int, half):
        if self.train_protos is not None and half is not None:
            out = torch.zeros_like(g)
            for h in (0, 1):
                sel = half == h
                if sel.any():
                    protos = self.train_protos[1 - h]  # leave-half-out: built without this sample's half
                    out[sel] = module(g[sel], protos[own_idx], protos[1 - own_idx], protos[2])[0]
            return out, None, None
        protos = (self.proto_img, self.proto_txt)
        return module(g, protos[own_idx], protos[1 - own_idx], self.proto_valid)

    def _enhance(self, base, kind: str, ids=None, half=None) -> Global:
        g = base
        info: dict = {}
        if self.cfg.use_instance and bool(self.proto_valid.any() or self.train_protos is not None):
            module = self.img_instance if kind == "image" else self.txt_instance
            ctx, w, idx = self._instance(module, base, 0 if kind == "image" else 1, half)
            g = g + ctx
            info["instance"] = (w, idx)
        if self.cfg.use_neighbour and self.mem_img.shape[0] > 0:
            if kind == "image":
                keys, values, index, module = self.mem_img, self.image_partners(), None, self.img_neighbour
                exclude = None if ids is None else (
                    torch.arange(keys.shape[0], device=base.device)[None, :] == ids[:, None])
            else:  # a caption's partner is its photo
                keys, values, index, module = self.mem_txt, self.mem_img, self.mem_cap_img, self.txt_neighbour
                exclude = None if ids is None else (self.mem_cap_img[None, :] == ids[:, None])
            ctx, w, idx = module(base, keys, values, exclude, index)
            g = g + ctx
            info["neighbour"] = (w, idx)
        return Global(F.normalize(g, dim=-1), base, info)

    def image_global(self, local: Local, ids=None, half=None) -> Global:
        base = F.normalize(self.img_pool(local.feats), dim=-1)
        return self._enhance(base, "image", ids, half)

    def text_global(self, local: Local, ids=None, half=None) -> Global:
        base = F.normalize(self.txt_pool(local.feats, local.mask), dim=-1)
        return self._enhance(base, "text", ids, half)

    # ----------------------------------------------------------------- Step 2
    def pair_scores(self, words, mask, patches, g_text, g_image, explain: bool = False):
        """Scores of aligned pairs; Step-1 cosine when Step 2 is switched off."""
        if not self.cfg.use_step2:
            s = (F.normalize(g_text, dim=-1) * F.normalize(g_image, dim=-1)).sum(-1)
            return (s, None, None) if explain else s
        return self.reranker(words, mask.bool(), patches, g_text, g_image, explain=explain)

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]
