from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import ThreadServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadServer]:
    running = ThreadServer(tmp_path / "data")
    try:
        yield running
    finally:
        running.stop()
