"""QtPlotCanvas: a matplotlib ``Figure`` embedded with ``FigureCanvasQTAgg`` (no pyplot)."""
from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtWidgets import QSizePolicy

from .plots import DARK, LIGHT


class QtPlotCanvas(FigureCanvasQTAgg):
    """A canvas owning one constrained-layout ``Figure``; :attr:`theme` follows the app palette."""

    def __init__(self, parent=None, width: float = 6.0, height: float = 4.5):
        self.figure = Figure(figsize=(width, height), layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(240, 200)
        self.theme = LIGHT

    def set_dark(self, dark: bool) -> None:
        self.theme = DARK if dark else LIGHT
        self.figure.set_facecolor(self.theme["bg"])

    def has_artists(self) -> bool:
        """True once something from data was drawn (images, patches, lines or collections)."""
        return any(ax.images or ax.patches or ax.lines or ax.collections for ax in self.figure.axes)
