"""The label bridge: what the two backbones know without any training, kept beside the trained model.

EfficientNet-Lite's own ImageNet classifier, applied to every patch of its pretrained head, names 1,000
visual classes per patch (class activation maps). MiniLM embeds the class prompts ("a photo of a
{class}") and any caption in one sentence space. A photo's *bridge vector* is the expected prompt embedding
under its class probabilities; a text's is its plain MiniLM sentence embedding; their cosine ranks
captions and photos of any domain about as well as ImageNet's classes cover it.

The fine-tuned towers drift away from this: the bridge keeps frozen copies of the pretrained top of each
tower (restored from the backbone packages, never saved in a checkpoint) and stores only the prompt
embeddings and a basis of their span (both computed once, when a model is built).

How the bridge's scores are fused with the model's: :mod:`sfe_desktop.model.fusion`.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from . import fused

PROMPT = "a photo of a {}"
# a bridge vector shorter than this before normalising is scaled by 1 / MIN_NORM instead of to unit length: once
# centred, a photo whose class probabilities are (nearly) the prompts' average has no direction, and normalising
# would turn rounding noise into one (real photos measured 0.07 and longer, Flickr8k val and Twemoji)
MIN_NORM = 1e-2


class LabelBridge(nn.Module):
    """Frozen pretrained tops of both towers, the class prompts' sentence embeddings and a basis of their span.

    Parameters
    ----------
    image_top
        The pretrained blocks above the image tower's split and its head (``nn.Identity`` when the tower
        is frozen whole: its lower part already ends in the head).
    classifier
        The pretrained ImageNet classifier (``_fc``), applied to every patch.
    text_top
        The pretrained transformer layers above the text tower's split (empty when it is frozen whole).
    centered
        Measure both sides from the prompts' mean (in the basis) before the cosine. Every prompt shares "a photo
        of a", so uncentred, a photo whose class probabilities are spread out (a texture, a drawing, anything
        the classifier does not know) lies near that mean and has a high cosine with nearly every text: all of
        a collection of such pictures then scores alike, high, for "a brick wall". Checkpoints built before
        this option were uncentred and stay so.
    """

    def __init__(self, image_top: nn.Module, classifier: nn.Linear, text_top: nn.ModuleList, text_run,
                 text_dim: int, dim: int, centered: bool = True):
        super().__init__()
        self.centered = centered
        self.image_top = copy.deepcopy(image_top)
        self.classifier = copy.deepcopy(classifier)
        self.text_top = copy.deepcopy(text_top)
        self._text_run = text_run  # TextBackbone.run_top: applies layers with the tower's mask convention
        for p in self.parameters():
            p.requires_grad_(False)
        n_classes = classifier.out_features
        self.register_buffer("prompts", torch.zeros(n_classes, text_dim))
        self.register_buffer("basis", torch.eye(text_dim, dim))
        self.dim = dim

    def train(self, mode: bool = True) -> "LabelBridge":
        """Always in inference mode: the pretrained tops are frozen (running batch-norm statistics, no dropout)."""
        return super().train(False)

    # ------------------------------------------------------------------------------------ images
    def patch_logits(self, lower: torch.Tensor) -> torch.Tensor:
        """(B, N, classes) pretrained ImageNet logits of every patch, from the image tower's lower output."""
        grid = self._image_top(lower)
        return self.classifier(grid.flatten(2).transpose(1, 2))

    def pooled_logits(self, lower: torch.Tensor) -> torch.Tensor:
        """(B, classes) the classifier on each photo's pooled grid: the mean of :meth:`patch_logits` over the
        patches (the classifier is linear), for a fraction of the work when the patches' own logits are not needed."""
        return self.classifier(self._image_top(lower).mean((2, 3)))

    def _image_top(self, lower: torch.Tensor) -> torch.Tensor:
        if isinstance(self.image_top, nn.Identity):
            return lower
        # inference on the CPU: a fused copy (batch norms folded; ONNX Runtime where installed)
        return fused.run(self, "image_top", lambda: fused.plain_top(self.image_top), lower, self.image_top)

    def _load_from_state_dict(self, *args, **kwargs):
        fused.forget(self)
        return super()._load_from_state_dict(*args, **kwargs)

    def image_vectors(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, dim) bridge vectors from the photos' pooled logits (B, classes) (:meth:`pooled_logits`): their class
        probabilities times the prompt embeddings, in the basis, L2-normalised."""
        probs = torch.softmax(logits, dim=-1)
        return F.normalize(self._from_center(probs @ self.prompts @ self.basis), dim=-1, eps=MIN_NORM)

    # ------------------------------------------------------------------------------------ texts
    def sentence(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) MiniLM sentence embeddings (masked mean of the pretrained top's tokens, normalised)
        from the text tower's lower hidden states."""
        h = self._text_run(self.text_top, hidden, mask) if len(self.text_top) else hidden
        m = mask.unsqueeze(-1).to(h.dtype)
        return F.normalize((h * m).sum(1) / m.sum(1).clamp(min=1), dim=-1)

    def text_vectors(self, sentences: torch.Tensor) -> torch.Tensor:
        """(B, dim) bridge vectors of texts: sentence embeddings in the basis, L2-normalised."""
        return F.normalize(self._from_center(sentences @ self.basis), dim=-1, eps=MIN_NORM)

    def _from_center(self, vectors: torch.Tensor) -> torch.Tensor:
        """``vectors`` in the basis, less the prompts' mean when the bridge is :attr:`centered`."""
        if not self.centered:
            return vectors
        return vectors - (self.prompts.mean(0) @ self.basis).to(vectors.dtype)

    # ------------------------------------------------------------------------------------ building
    @torch.no_grad()
    def set_prompts(self, prompt_sentences: torch.Tensor, dim: int | None = None) -> None:
        """Store the prompts' sentence embeddings (classes, text_dim) and the top ``dim`` right singular vectors
        of their matrix: the part of the sentence space the photo side of the bridge can reach."""
        p = F.normalize(prompt_sentences.float(), dim=-1)
        dim = dim or self.dim
        _, _, vt = torch.linalg.svd(p, full_matrices=False)
        self.prompts = p.to(self.prompts.device)
        self.basis = vt[:dim].t().contiguous().to(self.prompts.device)
