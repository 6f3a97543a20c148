"""Qt item models over core results."""
from .results_model import QtResultsModel

__all__ = ["QtResultsModel"]
