"""What happened to one imported file: what the terminal prints and what watch mode writes beside it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ._import_files import Issue


@dataclass
class FileReport:
    """What happened to one file. Counts are rows of the file, unreadable rows included."""

    path: Path
    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    linked: int = 0
    issues: list[Issue] = field(default_factory=list)
    unlisted: int = 0  # rejected rows the server counted but did not itemise (it lists 1,000)
    ignored_columns: tuple[str, ...] = ()
    error: str | None = None  # the file was not imported; nothing of it was applied
    transient: bool = False  # the server was unreachable: worth trying again later

    @property
    def imported(self) -> bool:
        return self.error is None

    def issue_lines(self, limit: int | None = None) -> list[str]:
        shown = self.issues if limit is None else self.issues[:limit]
        lines = [f"{self.path}:{i.where}: {i.field}: {i.message}" for i in shown]
        hidden = len(self.issues) - len(shown) + self.unlisted
        if hidden:
            lines.append(f"{self.path}: ... and {hidden} more rejected rows not listed")
        return lines

    def summary(self) -> str:
        if self.error is not None:
            return f"{self.path}: not imported: {self.error}"
        return (
            f"{self.path}: {self.received} rows: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.rejected} rejected, {self.linked} linked probabilistically"
        )

    def text(self) -> str:
        """The whole report, for a file beside the import (watch mode)."""
        notes = [f"{self.path}: ignored columns: {', '.join(self.ignored_columns)}"] if self.ignored_columns else []
        return "\n".join([self.summary(), *notes, *self.issue_lines()]) + "\n"
