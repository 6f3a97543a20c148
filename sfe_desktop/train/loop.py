"""Training on cached frozen-backbone features: Step-1 contrastive loss plus a Step-2 loss on each
query's hardest Step-1 candidates; corpus cues refreshed every epoch without self-leakage; the best
epoch on the validation split is saved as a checkpoint."""
from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.datasets import PairDataset
from ..data.features import image_lower_features
from ..errors import Cancelled, CheckpointError, DatasetError, TrainingDiverged
from ..model.build import init_bridge, init_concepts, refresh_memory
from ..model.calibrate import calibrate, fit_fusion
from ..model.checkpoint import load_checkpoint, save_checkpoint
from ..model.config import ModelConfig
from ..model.corpus import Corpus
from ..model.features import encode_dataset, encode_texts
from ..model.sfe import SFEModel
from .evaluate import dataset_lower, evaluate_encoded
from .loss import candidate_loss, infonce, vsepp
from ..model.metrics import format_metrics
from .mosaic import content_words, exclusive_tokens, localisation_loss, photo_words, quadrant_weights

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 128
    lr: float = 5e-4
    backbone_lr: float = 3e-5
    weight_decay: float = 1e-4
    loss: str = "infonce"          # or "vsepp"
    temperature: float = 0.05
    step2_queries: int = 48         # queries per batch and direction trained through Step 2
    step2_negatives: int = 3
    feature_dropout: float = 0.1
    learn_temperature: bool = False  # a learnt InfoNCE temperature, starting at ``temperature``
    localisation: float = 0.0       # weight of the mosaic localisation loss (needs mosaics)
    mosaic_batch: int = 32          # mosaics per training step
    init: str = ""                  # a checkpoint whose trained weights start the model (fine-tuning)
    new_lr: float = 0.0             # learning rate of the parameters ``init`` lacks (a new module); 0: ``lr``
    views: tuple[str, ...] = ()     # augmented views of the training photos besides the photos ("flip", "crop")
    seed: int = 0
    patience: int = 3


@contextmanager
def _eval_mode(module: torch.nn.Module):
    """Run frozen layers as at inference (batch-norm running statistics, no dropout or drop-connect), then
    restore the module's mode."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)


def adapt_image_lower(backbone, cached, cached_split: int, batch_size: int = 256):
    """Move an image cache taken at block ``cached_split`` up to the backbone's own split."""
    if cached_split == backbone.split and backbone.n_upper_blocks:
        return cached
    if cached_split > backbone.split:
        raise ValueError("the feature cache was taken above the layers this model fine-tunes")
    dev = next(backbone.parameters()).device
    out = []
    with torch.no_grad(), _eval_mode(backbone):
        for a in range(0, len(cached), batch_size):
            h = torch.as_tensor(np.array(cached[a:a + batch_size]), device=dev).float()
            out.append(backbone.run_blocks(h, cached_split).half().cpu().numpy())
    return np.concatenate(out)


def adapt_text_lower(backbone, cached: dict, cached_split: int, batch_size: int = 512) -> dict:
    """Move a text cache taken below layer ``cached_split`` up to the backbone's own split."""
    if cached_split == backbone.split:
        return cached
    dev = next(backbone.parameters()).device
    hidden = np.zeros_like(cached["hidden"])
    with torch.no_grad(), _eval_mode(backbone):
        for a in range(0, len(hidden), batch_size):
            m = torch.as_tensor(cached["mask"][a:a + batch_size], device=dev)
            w = int(m.sum(1).max())
            h = torch.as_tensor(cached["hidden"][a:a + batch_size, :w], device=dev).float()
            hidden[a:a + batch_size, :w] = backbone.run_layers(h, m[:, :w], cached_split).cpu().numpy()
    return {**cached, "hidden": hidden}


class Trainer:
    """Train ``model_cfg`` on ``train`` and select the best epoch on ``val``."""

    def __init__(self, model_cfg: ModelConfig, train: PairDataset, val: PairDataset, cfg: TrainConfig,
                 device: torch.device, cache_dir: Path | None, out_dir: Path,
                 log_fn: Callable[[str], None] = log.info, cancel: threading.Event | None = None,
                 cache_split_blocks: int = 1, cache_split_layers: int = 2, features: tuple | None = None,
                 mosaics: tuple[np.ndarray, np.ndarray] | None = None):
        torch.manual_seed(cfg.seed)
        self.cfg, self.train_ds, self.val_ds, self.out_dir = cfg, train, val, Path(out_dir)
        self.device, self.log, self.cancel = device, log_fn, cancel
        self.model = SFEModel(model_cfg).to(device)
        # the caches are taken below the top `cache_split_blocks` image blocks and `cache_split_layers`
        # text layers, whatever this model fine-tunes; frozen layers above them run once here
        img_b, txt_b = self.model.image, self.model.text
        n_img, n_txt = img_b.n_upper_blocks, txt_b.n_upper
        img_b.n_upper_blocks, txt_b.n_upper = max(cache_split_blocks, n_img), max(cache_split_layers, n_txt)
        img_split, txt_split = img_b.split, txt_b.split
        if features is None:
            img_tr, txt_tr = dataset_lower(self.model, train, cache_dir)
            img_va, txt_va = dataset_lower(self.model, val, cache_dir)
            # each view's lower features once (cached like the photos'), the frozen part never sees them again
            views = [image_lower_features(img_b, train.image_paths, cache_dir, view=v) for v in cfg.views]
        img_b.n_upper_blocks, txt_b.n_upper = n_img, n_txt
        if features is None:
            self.img_tr = [adapt_image_lower(img_b, x, img_split) for x in (img_tr, *views)]
            self.img_va = adapt_image_lower(img_b, img_va, img_split)
            self.txt_tr, self.txt_va = (adapt_text_lower(txt_b, x, txt_split) for x in (txt_tr, txt_va))
        else:  # features already at this model's split (shared by several runs)
            self.img_tr, self.txt_tr, self.img_va, self.txt_va = features
        # augmented views of the training images: a list of caches, the first one the plain photos
        self.img_views = list(self.img_tr) if isinstance(self.img_tr, (list, tuple)) else [self.img_tr]
        self.img_tr = self.img_views[0]
        self.log_tau = torch.nn.Parameter(torch.tensor(math.log(cfg.temperature), device=device),
                                          requires_grad=cfg.learn_temperature)
        self.vocab, self.cap_concepts = init_concepts(self.model, train.captions)
        self.classes = init_bridge(self.model)
        self.fresh: set[str] = set()  # parameters the init checkpoint lacked
        if cfg.init:
            self._start_from(Path(cfg.init))
        self.cap_img = np.asarray(train.caption_image)
        self.history: list[dict] = []
        # mosaics: (lower-layer features at this model's split, (M, 4) train image of each quadrant)
        self.mosaics = mosaics if cfg.localisation > 0 and model_cfg.use_step2 else None
        if self.mosaics is not None:
            self.caps_of = train.captions_of()
            self.photo_words = photo_words(train.captions, self.caps_of)
            self.cap_tokens = self.model.text.tokenize(list(train.captions))["tokens"]
            self.cap_words = [content_words(c) for c in train.captions]

    def _start_from(self, directory: Path) -> None:
        """Copy a checkpoint's trained parameters (same concept vocabulary, same shapes) into the model; the
        memory bank is rebuilt from this run's features at its first refresh."""
        start, meta, _ = load_checkpoint(directory)
        if meta.get("concepts") != self.vocab:
            raise CheckpointError(f"{directory}: its concept vocabulary is not this training set's; cannot start from it")
        params = dict(self.model.named_parameters())
        copied = set()
        with torch.no_grad():
            for name, value in start.named_parameters():
                if name in params and params[name].shape == value.shape:
                    params[name].copy_(value)
                    copied.add(name)
        self.fresh = {n for n in params if n not in copied}

    def _optimizer(self):
        backbone = [p for n, p in self.model.named_parameters() if p.requires_grad and n.startswith(("image.", "text."))]
        fresh = self.fresh if self.cfg.new_lr else set()
        heads = [p for n, p in self.model.named_parameters()
                 if p.requires_grad and not n.startswith(("image.", "text.")) and n not in fresh]
        new = [p for n, p in self.model.named_parameters() if p.requires_grad and n in fresh]
        if self.cfg.learn_temperature:
            heads.append(self.log_tau)
        groups = [{"params": heads, "lr": self.cfg.lr}]
        if new:
            groups.append({"params": new, "lr": self.cfg.new_lr})
        if backbone:
            groups.append({"params": backbone, "lr": self.cfg.backbone_lr})
        return torch.optim.AdamW(groups, weight_decay=self.cfg.weight_decay, foreach=True)

    def _batches(self, rng: np.random.Generator):
        """Each epoch visits every caption once; a batch never holds the same image twice."""
        caps_of = self.train_ds.captions_of()
        rounds = max(len(c) for c in caps_of)
        offset = rng.integers(0, rounds, size=len(caps_of))
        for r in range(rounds):
            order = rng.permutation(len(caps_of))
            for a in range(0, len(order), self.cfg.batch_size):
                imgs = order[a:a + self.cfg.batch_size]
                if len(imgs) < 8:
                    continue
                caps = np.array([caps_of[i][(r + offset[i]) % len(caps_of[i])] for i in imgs])
                yield imgs, caps

    def _image_batch(self, imgs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Lower-layer features of ``imgs``, each from one of the cached views, drawn at random."""
        if len(self.img_views) == 1:
            return np.array(self.img_views[0][imgs])
        view = rng.integers(len(self.img_views), size=len(imgs))
        return np.stack([self.img_views[v][i] for v, i in zip(view.tolist(), imgs.tolist())])

    def _mosaic_loss(self, rng: np.random.Generator, concepts) -> torch.Tensor:
        """Localisation: a caption of one quadrant's photo should put its heatmap (and each of its exclusive
        words' rows) inside that quadrant of a 2x2 mosaic."""
        m, dev = self.model, self.device
        feats, quads = self.mosaics
        pick = rng.choice(len(feats), min(self.cfg.mosaic_batch, len(feats)), replace=False)
        q = rng.integers(4, size=len(pick))
        caps, word_ok, cap_ok = [], [], []
        for k, (mi, qi) in enumerate(zip(pick.tolist(), q.tolist())):
            photos = quads[mi].tolist()
            c = int(rng.choice(self.caps_of[photos[qi]]))
            others = [self.photo_words[p] for j, p in enumerate(photos) if j != qi]
            caps.append(c)
            word_ok.append(exclusive_tokens(self.cap_tokens[c], others))
            cap_ok.append(not any(self.cap_words[c] & o for o in others))
        caps = np.asarray(caps)
        mask = torch.as_tensor(self.txt_tr["mask"][caps], device=dev)
        width = int(mask.sum(1).max())
        mask = mask[:, :width]
        h = torch.as_tensor(self.txt_tr["hidden"][caps, :width], device=dev).float()
        ok = np.zeros((len(caps), width), dtype=bool)
        for k, w in enumerate(word_ok):
            ok[k, :min(width, len(w))] = w[:width]
        x = torch.as_tensor(np.array(feats[pick]), device=dev).float()
        il = m.image_local(x, concepts)
        tl = m.text_local(h, mask, concepts)
        rows, omega = m.reranker.attention(tl.feats, tl.mask, il.feats)
        heat = (omega.unsqueeze(-1) * rows).sum(1)
        side = int(round(il.feats.shape[1] ** 0.5))  # the towers see square inputs: a square grid
        grid_q = torch.as_tensor(quadrant_weights((side, side)), device=dev, dtype=heat.dtype)
        return localisation_loss(heat, rows, grid_q[torch.as_tensor(q, device=dev)],
                                 torch.as_tensor(cap_ok, device=dev), torch.as_tensor(ok, device=dev) & mask)

    def _step2_loss(self, il, tl, gi, gt, sims):
        m, q, n = self.model, self.cfg.step2_queries, self.cfg.step2_negatives
        q = min(q, sims.shape[0])
        neg_mask = torch.eye(sims.shape[0], dtype=torch.bool, device=sims.device)
        hard = sims.detach().masked_fill(neg_mask, -1e4)
        loss = 0.0
        for direction in ("t2i", "i2t"):
            mat = hard.t() if direction == "t2i" else hard   # rows: queries
            negs = mat[:q].topk(min(n, mat.shape[1] - 1), dim=1).indices
            cands = torch.cat([torch.arange(q, device=sims.device)[:, None], negs], dim=1)  # (q, 1+n)
            qi = torch.arange(q, device=sims.device)[:, None].expand_as(cands).reshape(-1)
            ci = cands.reshape(-1)
            ti, ii = (qi, ci) if direction == "t2i" else (ci, qi)
            scores = m.pair_scores(tl.feats[ti], tl.mask[ti], il.feats[ii], gt[ti], gi[ii]).view(q, -1)
            loss = loss + candidate_loss(scores)
        return loss / 2

    def train_epoch(self, epoch: int, opt, sched, progress=None) -> float:
        m, cfg, dev = self.model, self.cfg, self.device
        if m.cfg.use_instance or m.cfg.use_neighbour:
            refresh_memory(m, self.img_tr, self.txt_tr, self.cap_img, self.cap_concepts, leave_half_out=True)
        m.train()
        m.image.eval()
        m.text.eval()
        rng = np.random.default_rng(cfg.seed + epoch)
        losses = []
        batches = list(self._batches(rng))
        for step, (imgs, caps) in enumerate(batches):
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled("training cancelled")
            x = torch.as_tensor(self._image_batch(imgs, rng), device=dev).float()
            mask = torch.as_tensor(self.txt_tr["mask"][caps], device=dev)
            width = int(mask.sum(1).max())
            h = torch.as_tensor(self.txt_tr["hidden"][caps, :width], device=dev).float()
            mask = mask[:, :width]
            if cfg.feature_dropout:
                x = torch.nn.functional.dropout(x, cfg.feature_dropout)
                h = torch.nn.functional.dropout(h, cfg.feature_dropout)
            ids = torch.as_tensor(imgs, device=dev)
            half = ids % 2
            concepts = m.concept_embeddings()
            il = m.image_local(x, concepts)
            tl = m.text_local(h, mask, concepts)
            gi = m.image_global(il, ids=ids, half=half).vec
            gt = m.text_global(tl, ids=ids, half=half).vec
            sims = gi @ gt.t()
            tau = self.log_tau.exp().clamp(0.01, 0.2)
            loss = infonce(sims, tau) if cfg.loss == "infonce" else vsepp(sims)
            if m.cfg.use_step2:
                loss = loss + self._step2_loss(il, tl, gi, gt, sims)
            if self.mosaics is not None:
                loss = loss + cfg.localisation * self._mosaic_loss(rng, concepts)
            if not bool(torch.isfinite(loss)):  # stop before a NaN reaches the weights
                raise TrainingDiverged(f"the loss became {loss.item()} at epoch {epoch}, step {step + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.trainable_parameters(), 2.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if progress:
                progress(step + 1, len(batches), float(np.mean(losses[-50:])))
        return float(np.mean(losses))

    def validate(self) -> dict:
        m = self.model
        if m.cfg.use_instance or m.cfg.use_neighbour:
            refresh_memory(m, self.img_tr, self.txt_tr, self.cap_img, self.cap_concepts, leave_half_out=False)
        images, texts = encode_dataset(m, self.img_va, self.txt_va)
        if m.cfg.bridge_dim:  # what a search with this epoch's weights would fuse
            m.fusion = fit_fusion(m, images, texts)
        self._val_features = (images, texts)
        return evaluate_encoded(m, images, texts, self.val_ds.caption_image)

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.trainable_parameters())

    def fit(self, progress_factory=None, meta: dict | None = None) -> dict:
        """Train ``cfg.epochs`` epochs, saving each epoch that beats the best val rSum so far. A non-finite loss
        or weights stop training: the checkpoint on disk stays the best finite epoch (``"stopped"`` says why);
        :class:`TrainingDiverged` when no epoch finished finite."""
        cfg = self.cfg
        opt = self._optimizer()
        per_epoch = sum(1 for _ in self._batches(np.random.default_rng(0)))
        if cfg.epochs < 1 or per_epoch == 0:
            raise DatasetError(f"{self.train_ds.name}: nothing to train: {len(self.train_ds.images)} training images "
                               f"in batches of {cfg.batch_size}, {cfg.epochs} epochs (a batch needs at least 8 "
                               "different images)")
        steps = cfg.epochs * per_epoch
        warm = max(1, steps // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
        best, best_epoch, bad, stopped = -1.0, -1, 0, None
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.time()
            progress = progress_factory(epoch) if progress_factory else None
            try:
                loss = self.train_epoch(epoch, opt, sched, progress)
                if not self._weights_finite():
                    raise TrainingDiverged(f"the weights became non-finite in epoch {epoch}")
            except TrainingDiverged as exc:
                stopped = str(exc)
                self.log(f"stopping: {stopped}")
                break
            metrics = self.validate()
            key = metrics["rerank"]["rsum"]
            row = {"epoch": epoch, "loss": round(loss, 4), "seconds": round(time.time() - t0, 1),
                   "val_step1": metrics["step1"], "val_rerank": metrics["rerank"]}
            self.history.append(row)
            self.log(f"epoch {epoch}: loss {loss:.4f}, {row['seconds']:.0f} s | step1 {format_metrics(metrics['step1'])}"
                     f" | re-ranked rSum {key:.1f}")
            if key > best:
                best, best_epoch, bad = key, epoch, 0
                self.save(metrics, epoch, meta or {})
            else:
                bad += 1
                if bad >= cfg.patience:
                    self.log(f"stopping: no better val rSum for {bad} epochs")
                    break
        if best_epoch < 1:
            raise TrainingDiverged(f"{stopped}; no epoch finished with finite weights, so no checkpoint was written "
                                   "(a lower learning rate may help)")
        return {"best_epoch": best_epoch, "best_rsum": best, "history": self.history, "stopped": stopped}

    def save(self, metrics: dict, epoch: int, meta: dict) -> None:
        m = self.model
        # the shipped memory bank and prototypes are the full training corpus (no halves)
        if m.cfg.use_instance or m.cfg.use_neighbour:
            refresh_memory(m, self.img_tr, self.txt_tr, self.cap_img, self.cap_concepts, leave_half_out=False)
        # fusion and confidence from the val features :meth:`validate` just computed, against the full memory
        images, texts = self._val_features
        calibration = calibrate(m, images, texts, self.val_ds.caption_image, lambda t: encode_texts(m, t))
        save_checkpoint(m, self.out_dir, {
            "concepts": self.vocab, "classes": self.classes, "calibration": calibration,
            "training": {"dataset": self.train_ds.name, "val": self.val_ds.name, "epoch": epoch,
                         "config": asdict(self.cfg), "history": self.history, **meta},
            "metrics": {"val": metrics},
        }, Corpus(list(self.train_ds.captions), [int(i) for i in self.train_ds.caption_image],
                  list(self.train_ds.images)))
