"""QtResultDelegate: paints a result as a thumbnail tile with its score, or as a caption row."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ..models.results_model import BadgeRole, ResultRole, ScoreRole, StrengthRole, ThumbnailRole

WEAK_OPACITY = 0.45  # how a weak match is drawn next to the strong ones


class QtResultDelegate(QStyledItemDelegate):
    """Tiles (``tile`` logical pixels square plus a text line) for photos; full-width rows for captions. A weak
    match is drawn faded; the badge shows the confidence (else the score)."""

    def __init__(self, tile: int = 160, parent=None):
        super().__init__(parent)
        self.tile = tile
        self.caption_mode = False

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        fm = QFontMetrics(option.font)
        if self.caption_mode:
            return QSize(max(200, option.rect.width()), fm.height() * 2 + 12)
        return QSize(self.tile + 12, self.tile + fm.height() * 2 + 14)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing)
        pal = option.palette
        selected = bool(option.state & QStyle.State_Selected)
        rect = option.rect.adjusted(3, 3, -3, -3)
        if selected:
            painter.setPen(Qt.NoPen)
            painter.setBrush(pal.color(QPalette.Highlight))
            painter.drawRoundedRect(rect, 6, 6)
        elif option.state & QStyle.State_MouseOver:
            painter.setPen(Qt.NoPen)
            painter.setBrush(pal.color(QPalette.AlternateBase))
            painter.drawRoundedRect(rect, 6, 6)
        text_color = pal.color(QPalette.HighlightedText if selected else QPalette.Text)
        if index.data(StrengthRole) == "weak" and not selected:
            painter.setOpacity(WEAK_OPACITY)
        score = index.data(ScoreRole) or 0.0
        title = index.data(Qt.DisplayRole) or ""
        if self.caption_mode:
            self._paint_caption(painter, option, rect, index, title, score, text_color)
        else:
            self._paint_tile(painter, option, rect, index, title, score, text_color)
        if option.state & QStyle.State_HasFocus:
            painter.setPen(pal.color(QPalette.Highlight).darker(130))
            painter.setBrush(Qt.NoBrush)
            painter.drawRoundedRect(rect, 6, 6)
        painter.restore()

    def _paint_tile(self, painter, option, rect, index, title, score, text_color) -> None:
        fm = QFontMetrics(option.font)
        area = QRect(rect.left() + 3, rect.top() + 3, rect.width() - 6, self.tile)
        pix = index.data(ThumbnailRole)
        if pix is not None and not pix.isNull():
            scaled = pix.size().scaled(area.size(), Qt.KeepAspectRatio)
            target = QRect(0, 0, scaled.width(), scaled.height())
            target.moveCenter(area.center())
            painter.setRenderHint(QPainter.SmoothPixmapTransform)
            painter.drawPixmap(target, pix)
        else:  # placeholder while the thumbnail loads (or if the file is unreadable)
            painter.setPen(Qt.NoPen)
            painter.setBrush(option.palette.color(QPalette.Mid))
            painter.drawRoundedRect(area.adjusted(12, 12, -12, -12), 4, 4)
        badge = index.data(BadgeRole) or ""  # confidence (or score) in the top-left corner
        if badge:
            bw, bh = fm.horizontalAdvance(badge) + 10, fm.height() + 4
            badge_rect = QRect(area.left() + 4, area.top() + 4, bw, bh)
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor(0, 0, 0, 160))
            painter.drawRoundedRect(badge_rect, 4, 4)
            painter.setPen(QColor("white"))
            painter.drawText(badge_rect, Qt.AlignCenter, badge)
        painter.setPen(text_color)
        text_rect = QRect(rect.left() + 4, area.bottom() + 4, rect.width() - 8, rect.bottom() - area.bottom() - 4)
        painter.drawText(text_rect, Qt.AlignHCenter | Qt.AlignTop,
                         fm.elidedText(title, Qt.ElideMiddle, text_rect.width()))

    def _paint_caption(self, painter, option, rect, index, title, score, text_color) -> None:
        fm = QFontMetrics(option.font)
        result = index.data(ResultRole)
        rank = f"{result.rank}." if result is not None else ""
        left = rect.adjusted(8, 0, -8, 0)
        painter.setPen(option.palette.color(QPalette.PlaceholderText))
        painter.drawText(left, Qt.AlignLeft | Qt.AlignVCenter, rank)
        # score bar
        bar_w = fm.horizontalAdvance("0.000") + 70
        bar = QRect(left.right() - bar_w, left.center().y() - fm.height() // 2, bar_w, fm.height())
        painter.setPen(text_color)
        confidence = getattr(result, "confidence", None)
        painter.drawText(bar, Qt.AlignRight | Qt.AlignVCenter, index.data(BadgeRole) or f"{score:.3f}")
        level = confidence if confidence is not None else score
        filled = QRect(bar.left(), bar.top() + 3, int(60 * max(0.0, min(1.0, level))), bar.height() - 6)
        painter.setPen(Qt.NoPen)
        painter.setBrush(option.palette.color(QPalette.Highlight).lighter(120))
        painter.drawRect(filled)
        text_rect = QRect(left.left() + fm.horizontalAdvance("0000."), left.top(),
                          bar.left() - left.left() - fm.horizontalAdvance("0000.") - 8, left.height())
        painter.setPen(text_color)
        painter.drawText(text_rect, Qt.AlignLeft | Qt.AlignVCenter,
                         fm.elidedText(title, Qt.ElideRight, text_rect.width()))
