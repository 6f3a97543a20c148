"""Typed exceptions of the GUI-free core. Each message is one line a user can act on."""


class SFEError(Exception):
    """Base class of every error the core raises on purpose."""


class BackboneMissingError(SFEError):
    """A pretrained backbone package is not installed."""


class CheckpointError(SFEError):
    """A checkpoint is missing, truncated, mismatched or of the wrong version."""


class DatasetError(SFEError):
    """A dataset file or its images cannot be read."""


class ImageReadError(SFEError):
    """One image cannot be decoded; the message says why."""


class IndexStateError(SFEError):
    """A collection index cannot be opened or does not match the model."""


class Cancelled(SFEError):
    """A long job stopped because its cancel event was set."""


class TrainingDiverged(SFEError):
    """Training produced a non-finite loss or non-finite weights."""


class IndexDamagedError(IndexStateError):
    """A collection's index folder is damaged (its catalog cannot be read or holds impossible values)."""
