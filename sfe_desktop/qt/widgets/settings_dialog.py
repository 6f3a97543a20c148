"""QtSettingsDialog: device, checkpoint and top-K, persisted in QSettings."""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QRadioButton, QSpinBox, QVBoxLayout,
                               QWidget)

DEVICES = [("auto", "Auto"), ("cuda", "CUDA (GPU)"), ("cpu", "CPU")]


@dataclass
class AppSettings:
    """What the Settings dialog edits. ``checkpoint`` None means the bundled default."""

    device: str = "auto"
    checkpoint: str | None = None
    top_k: int = 50

    @classmethod
    def load(cls, qs: QSettings) -> "AppSettings":
        device = str(qs.value("model/device", "auto"))
        checkpoint = str(qs.value("model/checkpoint", "") or "") or None
        try:
            top_k = int(qs.value("search/top_k", 50))
        except (TypeError, ValueError):
            top_k = 50
        return cls(device if device in dict(DEVICES) else "auto", checkpoint, max(1, min(10_000, top_k)))

    def save(self, qs: QSettings) -> None:
        qs.setValue("model/device", self.device)
        qs.setValue("model/checkpoint", self.checkpoint or "")
        qs.setValue("search/top_k", self.top_k)


class QtSettingsDialog(QDialog):
    """Edit an :class:`AppSettings`; CUDA is greyed out when ``cuda_available`` is False."""

    def __init__(self, settings: AppSettings, cuda_available: bool, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.device = QComboBox()
        for key, label in DEVICES:
            self.device.addItem(label, key)
        cuda_item = self.device.model().item(1)
        if not cuda_available:
            cuda_item.setEnabled(False)
            cuda_item.setToolTip("No CUDA GPU is available on this machine")
            self.device.setItemText(1, "CUDA (GPU) — not available")
        index = self.device.findData(settings.device)
        if settings.device == "cuda" and not cuda_available:
            index = 0
        self.device.setCurrentIndex(max(0, index))

        self.use_default = QRadioButton("Bundled default model")
        self.use_file = QRadioButton("Checkpoint folder:")
        group = QButtonGroup(self)
        group.addButton(self.use_default)
        group.addButton(self.use_file)
        self.checkpoint_path = QLineEdit(settings.checkpoint or "")
        self.checkpoint_path.setPlaceholderText("folder with config.json and model.safetensors")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        (self.use_file if settings.checkpoint else self.use_default).setChecked(True)
        self.use_file.toggled.connect(self._sync)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.use_file)
        row.addWidget(self.checkpoint_path, 1)
        row.addWidget(browse)
        self._browse_button = browse
        ckpt = QWidget()
        ckpt_lay = QVBoxLayout(ckpt)
        ckpt_lay.setContentsMargins(0, 0, 0, 0)
        ckpt_lay.addWidget(self.use_default)
        ckpt_lay.addLayout(row)

        self.top_k = QSpinBox()
        self.top_k.setRange(1, 10_000)
        self.top_k.setValue(settings.top_k)
        self.top_k.setSuffix(" results")

        form = QFormLayout()
        form.addRow("Device:", self.device)
        form.addRow("Model:", ckpt)
        form.addRow("Show up to:", self.top_k)
        note = QLabel("Changing the device or model reloads it in the background; a folder indexed with "
                      "another model is re-indexed.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(buttons)
        self._sync()
        self.resize(560, self.sizeHint().height())

    def _sync(self) -> None:
        on = self.use_file.isChecked()
        self.checkpoint_path.setEnabled(on)
        self._browse_button.setEnabled(on)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a checkpoint folder", self.checkpoint_path.text())
        if path:
            self.checkpoint_path.setText(path)

    def values(self) -> AppSettings:
        checkpoint = self.checkpoint_path.text().strip() if self.use_file.isChecked() else ""
        return AppSettings(self.device.currentData(), checkpoint or None, self.top_k.value())
