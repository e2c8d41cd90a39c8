"""What verification reports: one finding per discrepancy, naming the file and the row."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    file: str
    row: int | None  # 1-based, not counting a CSV's header; None: about the file or a gap
    message: str

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file} row {self.row}"
        return f"{where}: {self.message}"
