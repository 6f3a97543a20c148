"""The model's configuration (architecture, switches, ranking depth): a frozen dataclass that round-trips through
the ``"model"`` section of a checkpoint's ``config.json``. (The app's own settings: ``sfe_desktop.settings``.)"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..data.schema import Choice, Flag, Int, JSONObject, Spec, check_object

SCHEMA_VERSION = 1  # of this dataclass; the checkpoint folder's layout has its own (model/checkpoint.py)
# Settings added after checkpoints were first written, with the value that means "absent" in an older one.
ADDED_LATER = {"bridge_dim": 0, "pool": "max", "bridge_centered": False}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and switches of an SFE model (or of the plain two-tower baseline).

    Parameters
    ----------
    image_backbone, image_size, image_trainable_blocks
        EfficientNet-Lite variant (``lite0``, ``lite2``, ``tiny``), input size, and how many of its last
        MBConv blocks (plus the head convolution) are fine-tuned; 0 freezes the whole tower.
    text_backbone, text_trainable_layers, max_length
        ``minilm`` or ``tiny``, how many top transformer layers are fine-tuned, token limit.
    dim
        Joint embedding size.
    use_patch, use_instance, use_neighbour, use_step2
        Step-1 cue levels and the Step-2 re-ranker; all off is the two-tower baseline.
    rerank_k
        How many Step-1 candidates Step 2 re-scores, in every search and in ``evaluate``
        (:mod:`sfe_desktop.model.ranking`); a search may ask for another depth.
    pool
        How a global vector sums up its local features besides attention pooling: ``max`` (each dimension's largest
        value) or ``gpo`` (generalised pooling, :class:`~sfe_desktop.model.cues.GPO`: a learnt weighting of each
        dimension's sorted values, started as ``max``).
    bridge_dim
        Width of the label bridge's vectors (:mod:`sfe_desktop.model.bridge`: the pretrained ImageNet classifier's
        classes in MiniLM's sentence space, fused with the model's scores); 0: no bridge.
    bridge_centered
        Whether the bridge measures both sides from its class prompts' mean (:class:`~sfe_desktop.model.bridge.
        LabelBridge`); older checkpoints were built without.
    """

    image_backbone: str = "lite2"
    image_size: int = 260
    image_trainable_blocks: int = 1
    text_backbone: str = "minilm"
    text_trainable_layers: int = 1
    max_length: int = 40
    dim: int = 256
    n_concepts: int = 500
    use_patch: bool = True
    use_instance: bool = True
    use_neighbour: bool = True
    use_step2: bool = True
    neighbours_k: int = 8
    instance_top: int = 8
    rerank_k: int = 100
    bridge_dim: int = 192
    bridge_centered: bool = True
    pool: str = "max"
    version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_baseline(self) -> bool:
        return not (self.use_patch or self.use_instance or self.use_neighbour or self.use_step2)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "model") -> "ModelConfig":
        """The configuration a checkpoint's JSON describes. ValueError (one line, naming the key) when a key is
        unknown or a value is of the wrong type or out of :data:`BOUNDS`. A key added after a checkpoint was written
        takes its :data:`ADDED_LATER` value (what that checkpoint was built without)."""
        return cls(**{**ADDED_LATER, **check_object(data, bounds(), where)})

    def validate(self, where: str = "model") -> "ModelConfig":
        """Check every field against :data:`BOUNDS` (a configuration built in code or from options)."""
        check_object(self.to_dict(), bounds(), where)
        return self

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def tiny(cls, **changes) -> "ModelConfig":
        """A small random-initialised configuration for tests (no backbone packages needed)."""
        base = dict(image_backbone="tiny", image_size=64, image_trainable_blocks=1, text_backbone="tiny",
                    text_trainable_layers=1, max_length=16, dim=32, n_concepts=40, neighbours_k=4,
                    instance_top=4, rerank_k=10, bridge_dim=8)
        base.update(changes)
        return cls(**base)


# What each field accepts (checked whenever a configuration comes from a file or from options; a field added to
# ModelConfig needs its row here, tests/unit/test_config_schema.py checks that every field has one).
BOUNDS: dict[str, Spec] = {
    "image_backbone": Choice(("lite0", "lite2", "tiny")),
    "image_size": Int(32, 1024),
    "image_trainable_blocks": Int(0, 16),   # EfficientNet-Lite0 has 16 blocks, Lite2 21
    "text_backbone": Choice(("minilm", "tiny")),
    "text_trainable_layers": Int(0, 6),     # MiniLM-L6 has 6 layers
    "max_length": Int(4, 512),              # MiniLM's position table has 512 rows
    "dim": Int(8, 4096),
    "n_concepts": Int(1, 20_000),
    "use_patch": Flag(),
    "use_instance": Flag(),
    "use_neighbour": Flag(),
    "use_step2": Flag(),
    "neighbours_k": Int(1, 1024),
    "instance_top": Int(1, 1024),
    "rerank_k": Int(0, 10_000),
    "bridge_dim": Int(0, 1024),             # 0: no label bridge; at most MiniLM's 384 in practice
    "bridge_centered": Flag(),
    "pool": Choice(("max", "gpo")),
    "version": Int(1, SCHEMA_VERSION),
    "extra": JSONObject(max_depth=8),
}


def bounds() -> dict[str, Spec]:
    """:data:`BOUNDS`, refusing to check a field that has no row there (a programming error)."""
    missing = [f.name for f in dataclasses.fields(ModelConfig) if f.name not in BOUNDS]
    if missing:
        raise TypeError(f"ModelConfig field(s) without bounds in model/config.py BOUNDS: {', '.join(missing)}")
    return BOUNDS
