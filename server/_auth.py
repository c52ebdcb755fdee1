"""Who may call what: every RPC needs a scope, granted by a bearer token or, with mTLS, by the
subject CN of a verified client certificate. gRPC health checking and reflection need none
(they are separate services and never come through here).

A missing or malformed `authorization: Bearer <token>` metadata entry, or an unknown token,
is UNAUTHENTICATED; a token without the scope is PERMISSION_DENIED. Messages name the scope,
never the token. The caller's name (`token:NAME` or `cert:CN`) is `principal_of(context)` for
the rest of the call.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping

import grpc

from ._proto.idstitch.v1 import idstitch_pb2 as pb
from ._tokens import ADMIN, TokenFile

_SERVICE = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name
NOOP_RESOLVE = "/idstitch.bench.v1.Noop/Resolve"

# The scope each method needs; `admin` grants every scope. A method missing here is refused
# at start-up (see `service_handler`), so a new RPC cannot go out unguarded.
METHOD_SCOPES: Mapping[str, str] = {
    f"/{_SERVICE}/Ingest": "ingest",
    f"/{_SERVICE}/IngestStream": "ingest",
    f"/{_SERVICE}/SyncCrmRecords": "ingest",
    f"/{_SERVICE}/Resolve": "resolve",
    f"/{_SERVICE}/GetPerson": "read",
    f"/{_SERVICE}/GetHousehold": "read",
    f"/{_SERVICE}/Explain": "read",
    f"/{_SERVICE}/WatchChanges": "changes",
    f"/{_SERVICE}/WatchChangeBatches": "changes",
    f"/{_SERVICE}/Forget": ADMIN,
    f"/{_SERVICE}/LiftSuppression": ADMIN,
    f"/{_SERVICE}/ListAudit": ADMIN,
    f"/{_SERVICE}/WriteSnapshot": ADMIN,
    f"/{_SERVICE}/PromoteModel": ADMIN,
    f"/{_SERVICE}/RollbackModel": ADMIN,
    f"/{_SERVICE}/AddModel": ADMIN,
    f"/{_SERVICE}/ListModels": ADMIN,
    f"/{_SERVICE}/Relink": ADMIN,
    f"/{_SERVICE}/RelinkScored": ADMIN,
    NOOP_RESOLVE: "resolve",  # the benchmark's ceiling pays what Resolve pays
}

_BEARER = re.compile(r"[Bb]earer ([!-~]{1,512})")
_principal: contextvars.ContextVar[str] = contextvars.ContextVar("idstitch_principal")


def principal_of(context: grpc.aio.ServicerContext) -> str:
    """Who is making the current call: `token:NAME` or `cert:CN` (for audit records).

    The name is held per call (the call's task), not on `context`, which takes no attributes;
    `context` is the argument so that callers need not know that."""
    return _principal.get()


class Authoriser:
    def __init__(self, tokens: TokenFile, client_scopes: Mapping[str, frozenset[str]]) -> None:
        self._tokens = tokens
        self._client_scopes = client_scopes

    async def admit(self, method: str, context: grpc.aio.ServicerContext) -> None:
        """Return when the caller holds the scope `method` needs; abort the call otherwise."""
        scope = METHOD_SCOPES[method]
        principal, scopes = await self._identify(context)
        if scope not in scopes and ADMIN not in scopes:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"this call needs the {scope!r} scope")
        _principal.set(principal)

    async def _identify(self, context: grpc.aio.ServicerContext) -> tuple[str, frozenset[str]]:
        headers = [value for key, value in context.invocation_metadata() or () if key == "authorization"]
        if headers:
            # A token, when sent, decides alone (a certificate does not make up for a bad one).
            match = _BEARER.fullmatch(headers[0]) if len(headers) == 1 and isinstance(headers[0], str) else None
            if match is None:
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "malformed authorization metadata: send 'Bearer <token>'"
                )
                raise AssertionError("unreachable")  # abort raises
            token = self._tokens.find(match.group(1))
            if token is None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked token")
                raise AssertionError("unreachable")
            return f"token:{token.name}", token.scopes
        if self._client_scopes:
            for name in context.auth_context().get("x509_common_name", ()):
                cn = name.decode(errors="replace")
                if cn in self._client_scopes:
                    return f"cert:{cn}", self._client_scopes[cn]
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token: send metadata 'authorization: Bearer <token>'")
        raise AssertionError("unreachable")
