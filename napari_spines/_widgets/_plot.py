"""A small live plot of a validation figure against the step, drawn with QPainter.

No plotting library is needed (matplotlib is not a dependency). Records may come from a
worker thread: `MetricPlot.recorded` is a Qt signal, so `MetricPlot.add` runs on the main thread.
"""

from __future__ import annotations

import itertools

from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

#: How many of the latest records the text under the plot lists.
SHOWN_RECORDS = 3


def _number(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class _Canvas(QWidget):
    """The painted area: axes, the figure's line and points, the range of both axes."""

    def __init__(self, owner: MetricPlot) -> None:
        super().__init__(owner)
        self._owner = owner
        self.setMinimumHeight(110)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def paintEvent(self, _event: object) -> None:
        points = self._owner.points
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().windowText().color()
        painter.setPen(QPen(text, 1))
        area = QRectF(self.rect()).adjusted(44, 16, -10, -20)
        painter.drawText(
            QRectF(0, 0, self.width(), 16), Qt.AlignmentFlag.AlignCenter, self._owner.title
        )
        painter.drawLine(area.bottomLeft(), area.bottomRight())
        painter.drawLine(area.bottomLeft(), area.topLeft())
        if not points:
            painter.end()
            return
        steps = [s for s, _ in points]
        values = [v for _, v in points]
        x0, x1 = min(steps), max(steps) or 1.0
        y0, y1 = min(values), max(values)
        if y1 - y0 < 1e-6:
            y0, y1 = y0 - 0.05, y1 + 0.05

        def at(step: float, value: float) -> QPointF:
            x = area.left() + (step - x0) / max(x1 - x0, 1e-9) * area.width()
            y = area.bottom() - (value - y0) / (y1 - y0) * area.height()
            return QPointF(x, y)

        left = QRectF(0, area.top() - 8, 40, 16)
        painter.drawText(left, Qt.AlignmentFlag.AlignRight, f"{y1:.3g}")
        painter.drawText(
            left.translated(0, area.height()), Qt.AlignmentFlag.AlignRight, f"{y0:.3g}"
        )
        below = QRectF(area.left(), area.bottom() + 2, area.width(), 16)
        painter.drawText(below, Qt.AlignmentFlag.AlignLeft, f"step {x0:g}")
        painter.drawText(below, Qt.AlignmentFlag.AlignRight, f"{x1:g}")
        colour = QColor(255, 140, 0)
        painter.setPen(QPen(colour, 2))
        shown = [at(s, v) for s, v in points]
        for a, b in itertools.pairwise(shown):
            painter.drawLine(a, b)
        painter.setBrush(colour)
        for point in shown:
            painter.drawEllipse(point, 3, 3)
        painter.end()


class MetricPlot(QWidget):
    """One figure of validation records against their ``step``; the latest few as text."""

    #: A validation record (a dict with ``step``); may be emitted from any thread.
    recorded = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.metric = ""
        self.title = ""
        self.points: list[tuple[float, float]] = []
        self.records: list[dict] = []
        self.canvas = _Canvas(self)
        self.text = QLabel("")
        self.text.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        layout.addWidget(self.text)
        self.recorded.connect(self.add)
        self.setVisible(False)

    def start(self, metric: str, title: str) -> None:
        """Forget earlier records; plot ``metric`` (a record key) under ``title`` from now on."""
        self.metric, self.title = metric, title
        self.points, self.records = [], []
        self.text.setText("validating the model as it is…")
        self.setVisible(True)
        self.canvas.update()

    def add(self, record: dict) -> None:
        """Add one record (main thread: connected to `recorded`)."""
        self.records.append(record)
        value = record.get(self.metric)
        if value is not None:
            self.points.append((float(record.get("step", len(self.points))), float(value)))
        lines = [
            ", ".join(f"{k} {_number(v)}" for k, v in r.items() if k != "threshold")
            for r in self.records[-SHOWN_RECORDS:]
        ]
        self.text.setText("\n".join(lines))
        self.canvas.update()
