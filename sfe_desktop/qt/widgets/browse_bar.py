"""QtBrowseBar: how the result pane is arranged (sort order, subfolder, date range) and what it holds."""
from __future__ import annotations

from PySide6.QtCore import QDate, Signal
from PySide6.QtWidgets import QComboBox, QDateEdit, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ...search.browse import Arrangement

SORT_LABELS = {"relevance": "Best match", "newest": "Newest first", "oldest": "Oldest first", "name": "Name"}
ANY_DATE = QDate(1800, 1, 1)  # a date edit at this value means "no limit"
ALL_FOLDERS, TOP_FOLDER = "\x00all", "\x00top"


class QtBrowseBar(QWidget):
    """The line above the results: what is shown (:attr:`label`), then Sort, Folder and a date range (From, To).
    Emits :attr:`changed` when the user changes any of them."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.sort = QComboBox()
        for key, text in SORT_LABELS.items():
            self.sort.addItem(text, key)
        self.sort.setToolTip("Order of the results (date: when the photo was taken, else when its file changed)")
        self.folder = QComboBox()
        self.folder.setToolTip("Show the photos of one subfolder (and its subfolders) only")
        self.folder.setSizeAdjustPolicy(QComboBox.AdjustToContents)
        self.date_from, self.date_to = QDateEdit(), QDateEdit()
        for edit, tip in ((self.date_from, "Taken on or after this day"), (self.date_to, "Taken on or before")):
            edit.setCalendarPopup(True)
            edit.setMinimumDate(ANY_DATE)
            edit.setSpecialValueText("any")
            edit.setDate(ANY_DATE)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setToolTip(tip)
        controls = QHBoxLayout()
        controls.setContentsMargins(0, 0, 0, 0)
        for text, widget in (("Sort:", self.sort), ("Folder:", self.folder), ("From:", self.date_from),
                             ("To:", self.date_to)):
            caption = QLabel(text)
            caption.setBuddy(widget)
            controls.addWidget(caption)
            controls.addWidget(widget)
            controls.addSpacing(6)
        controls.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addLayout(controls)
        lay.addWidget(self.label)
        self._photo_sorts = True
        self.set_folders([])
        self.sort.currentIndexChanged.connect(lambda *_: self.changed.emit())
        self.folder.currentIndexChanged.connect(lambda *_: self.changed.emit())
        self.date_from.dateChanged.connect(lambda *_: self.changed.emit())
        self.date_to.dateChanged.connect(lambda *_: self.changed.emit())

    def set_photo_controls(self, photos: bool, relevance: bool) -> None:
        """Photos (the grid) can be filtered and sorted by date or name; captions only by relevance.
        ``relevance``: a search (the library has no best match)."""
        for widget in (self.folder, self.date_from, self.date_to):
            widget.setEnabled(photos)
        model = self.sort.model()
        for row in range(self.sort.count()):
            key = self.sort.itemData(row)
            model.item(row).setEnabled(key == "relevance" and relevance or key != "relevance" and photos)
        self._photo_sorts = photos

    def set_sort(self, key: str) -> None:
        self.sort.blockSignals(True)
        self.sort.setCurrentIndex(max(0, self.sort.findData(key)))
        self.sort.blockSignals(False)

    def set_folders(self, folders: list[str]) -> None:
        """The subfolders to offer (relative paths); the choice is kept when it is still there."""
        keep = self.folder.currentData()
        self.folder.blockSignals(True)
        self.folder.clear()
        self.folder.addItem("All folders", ALL_FOLDERS)
        if folders:
            self.folder.addItem("(top folder only)", TOP_FOLDER)
        for f in folders:
            self.folder.addItem(f, f)
        self.folder.setCurrentIndex(max(0, self.folder.findData(keep)))
        self.folder.setEnabled(self._photo_sorts)
        self.folder.blockSignals(False)

    def arrangement(self) -> Arrangement:
        folder = self.folder.currentData()
        folder = None if folder in (None, ALL_FOLDERS) else "" if folder == TOP_FOLDER else folder
        if not self.folder.isEnabled():
            folder = None
        day = {}
        for name, edit in (("date_from", self.date_from), ("date_to", self.date_to)):
            if edit.isEnabled() and edit.date() != ANY_DATE:
                day[name] = edit.date().toString("yyyy-MM-dd")
        return Arrangement(sort=self.sort.currentData() or "relevance", folder=folder, **day)

    def reset_filters(self) -> None:
        for widget, value in ((self.date_from, ANY_DATE), (self.date_to, ANY_DATE)):
            widget.blockSignals(True)
            widget.setDate(value)
            widget.blockSignals(False)
        self.folder.blockSignals(True)
        self.folder.setCurrentIndex(0)
        self.folder.blockSignals(False)
