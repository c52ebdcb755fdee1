"""The gRPC edge of idstitch: servicers, proto <-> domain conversion, status codes, config.

Imports no Splink: the serving path never waits on a SQL engine's planner. The generated
messages and stubs are `server._proto.idstitch.v1` (clients import them from there); the
command line that starts the server is `cli`.
"""

from ._app import RunningServer, serve, start
from ._auth import METHOD_SCOPES, principal_of
from ._config import SCOPES, ConfigError, ServerConfig, Settings, load_server_config, load_settings
from ._tokens import Token, add_token, list_tokens, revoke_token

__all__ = [
    "METHOD_SCOPES",
    "SCOPES",
    "ConfigError",
    "RunningServer",
    "ServerConfig",
    "Settings",
    "Token",
    "add_token",
    "list_tokens",
    "load_server_config",
    "load_settings",
    "principal_of",
    "revoke_token",
    "serve",
    "start",
]
