"""The `idstitch` command: serve, demo, import (and watch), token, simulate, train, compact.

The clients live here, not in the server: the importer reads customer files and sends them
over gRPC like any integrator's client, the demo tells its story over gRPC, and the training
commands run `training` in-process. Depends on `server`, `training` and `linkage`; nothing
depends on it.
"""

from ._main import main

__all__ = ["main"]
