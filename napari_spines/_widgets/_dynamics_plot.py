"""The Sessions widget's plot: spines counted, gained and lost in each session."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QImage, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from napari_spines.io.atomic import atomic_path
from napari_spines.sessions.dynamics import SessionDynamics

#: Bar colours: spines counted, gained and lost in each session.
PLOT_COLOURS = {"count": "#9e9e9e", "gained": "#3cb44b", "lost": "#f032e6"}


def _bars(rows: Sequence[SessionDynamics]) -> dict[str, list[int]]:
    return {
        "count": [r.count for r in rows],
        "gained": [r.gained or 0 for r in rows],
        "lost": [r.lost or 0 for r in rows],
    }


class DynamicsPlot(QWidget):
    """Grouped bars per session: spines counted, gained and lost (QPainter, like `_plot`)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[SessionDynamics] = []
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setVisible(False)

    def show_dynamics(self, rows: Sequence[SessionDynamics]) -> None:
        """Plot ``rows`` (one per session) and show the plot."""
        self.rows = list(rows)
        self.update()
        self.setVisible(True)

    def save_png(self, path: Path) -> Path:
        """Write the plot as a PNG, atomically."""
        image = QImage(720, 400, QImage.Format.Format_ARGB32)
        image.fill(QColor("white"))
        painter = QPainter(image)
        self.paint(painter, QRectF(0, 0, 720, 400), QColor("black"))
        painter.end()
        with atomic_path(path) as tmp:
            if not image.save(str(tmp), "PNG"):
                raise OSError(f"could not write {path}")
        return Path(path)

    def paintEvent(self, _event: object) -> None:
        painter = QPainter(self)
        self.paint(painter, QRectF(self.rect()), self.palette().windowText().color())
        painter.end()

    def paint(self, painter: QPainter, rect: QRectF, text: QColor) -> None:
        """Draw grouped bars (count, gained, lost) per session into ``rect``."""
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(text, 1))
        title = QRectF(rect.left(), rect.top(), rect.width(), 16)
        painter.drawText(title, Qt.AlignmentFlag.AlignCenter, "spines per session")
        area = rect.adjusted(34, 20, -8, -34)
        painter.drawLine(area.bottomLeft(), area.bottomRight())
        painter.drawLine(area.bottomLeft(), area.topLeft())
        if not self.rows:
            return
        bars = _bars(self.rows)
        top = max(max(bars["count"]), 1)
        painter.drawText(
            QRectF(rect.left(), area.top() - 8, 30, 16), Qt.AlignmentFlag.AlignRight, str(top)
        )
        slot = area.width() / len(self.rows)
        width = slot / (len(bars) + 1)
        for i in range(len(self.rows)):
            left = area.left() + i * slot + width / 2
            for k, (name, values) in enumerate(bars.items()):
                height = values[i] / top * area.height()
                bar = QRectF(left + k * width, area.bottom() - height, width * 0.9, height)
                painter.fillRect(bar, QColor(PLOT_COLOURS[name]))
            below = QRectF(area.left() + i * slot, area.bottom() + 2, slot, 14)
            painter.drawText(below, Qt.AlignmentFlag.AlignCenter, f"t{i}")
        legend = QRectF(area.left(), rect.bottom() - 16, 70, 14)
        for name in bars:
            swatch = QRectF(legend.left(), legend.top() + 3, 8, 8)
            painter.fillRect(swatch, QColor(PLOT_COLOURS[name]))
            painter.drawText(legend.adjusted(11, 0, 0, 0), Qt.AlignmentFlag.AlignLeft, name)
            legend.translate(70, 0)
