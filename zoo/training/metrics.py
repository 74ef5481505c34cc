"""Training metrics to ``metrics.csv`` (one row per value: step, metric, value, time) and TensorBoard.

On resume both are cut back to the checkpoint's step first, so a killed run leaves no
duplicate rows: the CSV is rewritten atomically without rows past that step, and TensorBoard's
``purge_step`` hides the stale events.
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from zoo.store.atomic import write_atomic

HEADER = ["step", "metric", "value", "time"]


class MetricsWriter:
    def __init__(self, folder: str | Path, *, enabled: bool = True, tensorboard: bool = True,
                 resume_step: int | None = None, accelerator=None):
        self.enabled = enabled
        self.accelerator = accelerator  # other trackers (wandb, trackio, mlflow) through accelerate
        self.folder = Path(folder)
        self.csv_path = self.folder / "metrics.csv"
        self._tb = None
        self._file = None
        if not enabled:
            return
        if resume_step is not None and self.csv_path.is_file():
            self._truncate(resume_step)
        new = not self.csv_path.is_file()
        self._file = open(self.csv_path, "a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(HEADER)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: CSV only
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(str(self.folder / "tensorboard"), purge_step=resume_step)

    def _truncate(self, step: int) -> None:
        rows = list(csv.reader(self.csv_path.open(newline="")))
        buf = io.StringIO()
        out = csv.writer(buf)
        out.writerow(HEADER)
        for row in rows[1:]:
            try:
                if int(row[0]) <= step:
                    out.writerow(row)
            except (ValueError, IndexError):
                continue
        write_atomic(self.csv_path, buf.getvalue())

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = round(time.time(), 3)
        for name, value in values.items():
            self._csv.writerow([step, name, f"{float(value):.6g}", now])
            if self._tb is not None:
                self._tb.add_scalar(name, float(value), step)
        self._file.flush()
        if self.accelerator is not None:
            self.accelerator.log({k: float(v) for k, v in values.items()}, step=step)

    def image(self, step: int, name: str, image_hwc) -> None:
        if self.enabled and self._tb is not None:
            self._tb.add_image(name, image_hwc, step, dataformats="HWC")

    def close(self) -> None:
        if self.accelerator is not None:
            self.accelerator.end_training()
            self.accelerator = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
