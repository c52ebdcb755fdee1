"""The gRPC edge of idstitch: servicers, proto <-> domain conversion, status codes, config.

Imports no Splink: the serving path never waits on a SQL engine's planner. The generated
messages and stubs are `server._proto.idstitch.v1` (clients import them from there); the
command line that starts the server is `cli`.
"""

from ._app import RunningServer, serve, start
from ._config import ConfigError, ServerConfig, Settings, load_server_config, load_settings

__all__ = [
    "ConfigError",
    "RunningServer",
    "ServerConfig",
    "Settings",
    "load_server_config",
    "load_settings",
    "serve",
    "start",
]
