"""Item delegates that paint results."""
from .result_delegate import QtResultDelegate

__all__ = ["QtResultDelegate"]
