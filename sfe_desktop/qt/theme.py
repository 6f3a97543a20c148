"""Light and dark palettes; ``system`` follows the desktop's colour scheme."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")


def dark_palette() -> QPalette:
    pal = QPalette()
    colours = {
        QPalette.Window: "#2b2b2b", QPalette.WindowText: "#e8e8e8", QPalette.Base: "#1f1f1f",
        QPalette.AlternateBase: "#353535", QPalette.ToolTipBase: "#353535", QPalette.ToolTipText: "#e8e8e8",
        QPalette.Text: "#e8e8e8", QPalette.Button: "#353535", QPalette.ButtonText: "#e8e8e8",
        QPalette.BrightText: "#ff6b6b", QPalette.Highlight: "#3d7fd6", QPalette.HighlightedText: "#ffffff",
        QPalette.Link: "#7fb2ff", QPalette.PlaceholderText: "#9a9a9a", QPalette.Mid: "#4a4a4a",
        QPalette.Dark: "#1a1a1a", QPalette.Light: "#505050", QPalette.Shadow: "#000000",
    }
    for role, colour in colours.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor("#7a7a7a"))
    return pal


def system_is_dark(app: QApplication) -> bool:
    return app.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply_theme(app: QApplication, theme: str) -> bool:
    """Apply ``theme`` (one of :data:`THEMES`) with the Fusion style; returns True when dark."""
    dark = system_is_dark(app) if theme == "system" else theme == "dark"
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    return dark
