"""Visitor models promoted on a running server: their files, which is in force, which came before.

A promoted model is written to `<data_dir>/models/<version>/` (the model JSON and its metrics
file, as training writes them), and `<data_dir>/models/in-force` names its version, so that a
restart serves it; `previous` names the one it replaced (`config`: the model of the
configuration), which `rollback` puts back.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import linkage

MODEL_FILE = "visitor-model.json"
METRICS_FILE = "visitor-model.metrics.json"
CONFIG = "config"  # the model of the configuration, not one of the promoted ones
# Registry states (the store's `models.state`), and who added the configuration's model.
PROPOSED, IN_FORCE, RETIRED = "proposed", "in force", "retired"
CONFIGURATION = "configuration"
_MAX_BYTES = 16 * 1024 * 1024
T = TypeVar("T")


class PromotedModels:
    def __init__(self, data_dir: Path) -> None:
        self._root = data_dir / "models"

    def in_force(self) -> Path | None:
        """The promoted model file in force, None when the configuration's model is."""
        return self._model_file(self._read("in-force"))

    def previous(self) -> str | None:
        """The version `rollback` puts back (`CONFIG` for the configuration's model)."""
        return self._read("previous")

    def model_file(self, version: str) -> Path | None:
        return self._model_file(version)

    def add(self, model_json: bytes, metrics_json: bytes) -> linkage.VisitorModel:
        """Check and keep a model's files; returns the model, loaded. `InvalidArgument` names the
        field of a model that is not one (unreadable, or one the scorer cannot compile)."""
        for field, raw in (("model_json", model_json), ("metrics_json", metrics_json)):
            if len(raw) > _MAX_BYTES:
                raise linkage.InvalidArgument(field, f"larger than {_MAX_BYTES} bytes")
        if not model_json:
            raise linkage.InvalidArgument("model_json", "required")
        for field, raw in (("model_json", model_json), ("metrics_json", metrics_json or b"{}")):
            try:
                json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise linkage.InvalidArgument(field, "not JSON") from None
        self._root.mkdir(mode=0o700, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".adding-", dir=self._root))
        (staging / MODEL_FILE).write_bytes(model_json)
        if metrics_json:
            (staging / METRICS_FILE).write_bytes(metrics_json)
        try:
            # Loaded once, here: the scorer is compiled and the metrics read; the files only move.
            model = linkage.VisitorModel.load(staging / MODEL_FILE)
        except (linkage.ModelError, ValueError, KeyError, TypeError) as exc:
            shutil.rmtree(staging)
            raise linkage.InvalidArgument(
                "model_json", f"not a visitor model this server can score with: {exc}"
            ) from None
        target = self._root / model.version
        if target.exists():
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)
        return model

    def record(self, in_force: str, previous: str) -> None:
        """`in_force` is now the version in force, after `previous`."""
        self._write("previous", previous)
        self._write("in-force", in_force)

    def record_configuration(self, previous: str) -> None:
        """The configuration's model is in force again."""
        self._write("previous", previous)
        (self._root / "in-force").unlink(missing_ok=True)

    def _model_file(self, version: str | None) -> Path | None:
        if version is None or version == CONFIG:
            return None
        path = self._root / version / MODEL_FILE
        return path if path.is_file() else None

    def _read(self, name: str) -> str | None:
        try:
            return (self._root / name).read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def _write(self, name: str, text: str) -> None:
        self._root.mkdir(mode=0o700, exist_ok=True)
        temporary = self._root / f".{name}.new"
        temporary.write_text(text + "\n", encoding="utf-8")
        os.replace(temporary, self._root / name)


class ModelChanges:
    """The model registry and the model changes of a running server (admin calls).

    The registry is the store's `models` table: every model ever proposed or in force, with its
    metrics file, who added it and when. The files themselves are kept by `PromotedModels`.
    One change at a time: a second promote or rollback while one runs is refused (`Busy`).
    """

    def __init__(
        self, stitcher: linkage.Stitcher, data_dir: Path, configured: Callable[[], linkage.VisitorModel | None]
    ) -> None:
        self._stitcher = stitcher
        self._models = PromotedModels(data_dir)
        self._configured = configured
        self._changing = asyncio.Lock()

    async def start(self, model_path: Path | None) -> None:
        """Enter the model in force (its file at `model_path`) in the registry, the
        configuration's the first time; any other entry that says in force is retired."""
        current = self._stitcher.visitor_model
        now = time.time()
        entries = await self._entries()
        for row in entries.values():
            if row.state == IN_FORCE and (current is None or row.version != current.version):
                await self._stitcher.put_model(replace(row, state=RETIRED, changed_at=now))
        if current is None:
            return
        entry = entries.get(current.version)
        if entry is None:
            metrics = _metrics_text(model_path)
            await self._stitcher.put_model(
                linkage.ModelRow(current.version, IN_FORCE, now, CONFIGURATION, now, metrics)
            )
        elif entry.state != IN_FORCE:
            await self._stitcher.put_model(replace(entry, state=IN_FORCE, changed_at=now))

    async def list(self) -> list[linkage.ModelRow]:
        return await self._stitcher.models()

    async def add(self, model_json: bytes, metrics_json: bytes, principal: str) -> linkage.ModelRow:
        """Keep a model's files and enter it in the registry as proposed (an entry already there
        is answered unchanged)."""
        model = self._models.add(model_json, metrics_json)
        return await self._enter(model.version, metrics_json, principal)

    async def promote(
        self, model_json: bytes, metrics_json: bytes, version: str, principal: str
    ) -> tuple[str, str, linkage.Relinked]:
        """Put a model in force, given its files or the version of one the registry holds, and
        relink every visitor with it; (its version, the version it replaced, the relink)."""
        if version and model_json:
            raise linkage.InvalidArgument("version", "give the model's files or its version, not both")
        return await self._exclusive(self._promote(model_json, metrics_json, version, principal))

    async def rollback(self, principal: str) -> tuple[str, str, linkage.Relinked]:
        """Put back the model the last promote (or rollback) replaced, and the links it
        replaced; (its version, the one it replaced, the relink)."""
        return await self._exclusive(self._rollback(principal))

    async def _promote(
        self, model_json: bytes, metrics_json: bytes, version: str, principal: str
    ) -> tuple[str, str, linkage.Relinked]:
        configured = None
        if version:
            entries = await self._entries()
            path = self._models.model_file(version) if version in entries else None
            configured = self._configured() if version in entries and path is None else None
            if path is not None:
                model = linkage.VisitorModel.load(path)
            elif configured is not None and configured.version == version:
                model = configured  # the configuration's model, whose files are not kept here
            else:
                raise linkage.NotFound(f"no model {version} in the registry: add it first")
        else:
            model = self._models.add(model_json, metrics_json)
            await self._enter(model.version, metrics_json, principal)
        current = self._stitcher.visitor_model
        if current is not None and current.version == model.version:
            raise linkage.InvalidArgument(
                "version" if version else "model_json", f"model {model.version} is in force already"
            )
        before = self._label()
        await self._stitcher.change_visitor_model(model, principal, "promote_model", f"{before} -> {model.version}")
        if model is configured:
            self._models.record_configuration(before)
        else:
            self._models.record(model.version, before)
        await self._mark(model.version, current)
        relinked = await self._stitcher.relink_after_model_change(current, principal)
        return model.version, before, relinked

    async def _rollback(self, principal: str) -> tuple[str, str, linkage.Relinked]:
        target = self._models.previous()
        if target is None:
            raise linkage.NotFound("no model to roll back to: nothing was promoted")
        if target == CONFIG:
            model = self._configured()
        else:
            path = self._models.model_file(target)
            if path is None:
                raise linkage.NotFound(f"the files of model {target} are gone")
            model = linkage.VisitorModel.load(path)
        current = self._stitcher.visitor_model
        before = self._label()
        await self._stitcher.change_visitor_model(
            model, principal, "rollback_model", f"{before} -> {target}", rollback=True
        )
        if target == CONFIG:
            self._models.record_configuration(before)
        else:
            self._models.record(target, before)
        if model is not None:
            await self._mark(model.version, current)
        elif current is not None:
            await self._mark(None, current)
        relinked = await self._stitcher.relink_after_model_change(current, principal, rollback=True)
        return (model.version if model is not None else "none"), before, relinked

    async def _exclusive(self, change: Coroutine[Any, Any, T]) -> T:
        """Run a model change alone, to its end even if its caller goes away: the swap in the
        writer and the bookkeeping after it (the in-force files, the registry) are one."""
        if self._changing.locked():
            change.close()
            raise linkage.Busy("another model change is under way; try again when it is done")
        await self._changing.acquire()  # free: taken at once, without yielding to another change

        async def alone() -> T:
            try:
                return await change
            finally:
                self._changing.release()

        return await asyncio.shield(asyncio.ensure_future(alone()))

    async def _enter(self, version: str, metrics_json: bytes, principal: str) -> linkage.ModelRow:
        entries = await self._entries()
        found = entries.get(version)
        if found is not None:
            return found
        now = time.time()
        metrics = metrics_json.decode("utf-8") if metrics_json else ""
        row = linkage.ModelRow(version, PROPOSED, now, principal, now, metrics)
        await self._stitcher.put_model(row)
        await self._stitcher.record_read(principal, "add_model", version)
        return row

    async def _mark(self, in_force: str | None, replaced: linkage.VisitorModel | None) -> None:
        """The registry after a change: `in_force` in force, the model it replaced retired."""
        now = time.time()
        entries = await self._entries()
        if replaced is not None and (old := entries.get(replaced.version)) is not None and replaced.version != in_force:
            await self._stitcher.put_model(replace(old, state=RETIRED, changed_at=now))
        if in_force is not None and (new := entries.get(in_force)) is not None:
            await self._stitcher.put_model(replace(new, state=IN_FORCE, changed_at=now))

    async def _entries(self) -> dict[str, linkage.ModelRow]:
        """The registry by version."""
        return {row.version: row for row in await self._stitcher.models()}

    def _label(self) -> str:
        """The version in force as the registry names it (`CONFIG` for the configuration's)."""
        in_force = self._models.in_force()
        return in_force.parent.name if in_force is not None else CONFIG


def _metrics_text(model_path: Path | None) -> str:
    """The metrics file training wrote beside a model file, as text ("" when there is none)."""
    if model_path is None:
        return ""
    metrics = model_path.with_name(model_path.name.removesuffix(".json") + ".metrics.json")
    try:
        return metrics.read_text(encoding="utf-8") if metrics.stat().st_size <= _MAX_BYTES else ""
    except OSError:
        return ""
