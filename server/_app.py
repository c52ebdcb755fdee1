"""Wiring: the gRPC asyncio server with health checking, reflection and graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

import linkage

from ._auth import NOOP_RESOLVE, Authoriser
from ._config import Settings, make_private_dir
from ._models import ModelChanges, PromotedModels
from ._proto.idstitch.v1 import idstitch_pb2 as pb
from ._servicer import IdentityServicer
from ._tls import server_credentials
from ._tokens import TokenFile, ensure_tokens
from ._wire import Admit, service_handler
from ._wire_count import EntryLimit

log = logging.getLogger("idstitch.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name
NOOP_SERVICE = "idstitch.bench.v1.Noop"


@dataclass
class RunningServer:
    server: grpc.aio.Server
    stitcher: linkage.Stitcher
    health: health_aio.HealthServicer
    port: int
    grace: float

    async def stop(self) -> None:
        """Refuse new calls, let in-flight calls finish, commit what is queued, close the store."""
        await self.health.enter_graceful_shutdown()
        self.stitcher.end_watches()
        await self.server.stop(self.grace)
        await self.stitcher.close()
        gc.unfreeze()  # let interpreter shutdown collect what start() froze


async def start(settings: Settings) -> RunningServer:
    """Open the store, rebuild the graph and start serving; returns once the port is bound.

    Refuses (ConfigError) plaintext on an address other than loopback, TLS keys or tokens
    others can read; makes the admin token on first start (see server/_tokens.py)."""
    cfg = settings.server
    credentials = server_credentials(cfg)
    promoted = PromotedModels(cfg.data_dir).in_force() if cfg.model_path is not None else None
    if promoted is not None:
        log.info("serving the promoted model in %s (PromoteModel), not the configuration's", promoted.parent)
        model = _load_model(promoted, None)
    else:
        model = _load_model(cfg.model_path, cfg.model_threshold)
    customer_model = _load_customer_model(cfg.customer_model_path, cfg.customer_model_threshold)
    make_private_dir(cfg.data_dir)
    # Everything the store writes (database, WAL, temporary files) is private to this user.
    os.umask(0o077)
    ensure_tokens(cfg)
    authoriser = Authoriser(TokenFile(cfg.tokens_path), cfg.client_scopes)
    if cfg.database.exists():
        cfg.database.chmod(0o600)
    store = linkage.DuckDBStore(cfg.database)
    stitcher = linkage.Stitcher(
        settings.linkage,
        store,
        model=model,
        customer_model=customer_model,
        max_feed_lag=cfg.change_feed_max_lag,
        evidence_cache=cfg.data_dir / "visitor-evidence.cache",
    )
    await stitcher.start()
    # The graph is millions of long-lived objects: leave them out of every collection, and
    # collect less often, or the cyclic GC rescans them all the time (10-15 % of a bulk sync).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
    )
    prechecks = {
        "Ingest": lambda request: stitcher.check_batch_count(len(request.signals)),
        "Resolve": lambda request: stitcher.check_resolve_count(len(request.identifiers)),
        "IngestStream": lambda request: stitcher.check_batch_count(len(request.signals)),
        "SyncCrmRecords": lambda request: stitcher.check_sync_chunk(len(request.records), 0),
    }
    core = settings.linkage
    limits = {
        "Ingest": EntryLimit("signals", core.max_signals_per_batch),
        "IngestStream": EntryLimit("signals", core.max_signals_per_batch),
        "Resolve": EntryLimit("identifiers", core.max_identifiers_per_resolve),
        "SyncCrmRecords": EntryLimit("records", core.max_records_per_message),
    }
    model_changes = ModelChanges(stitcher, cfg.data_dir, lambda: _load_model(cfg.model_path, cfg.model_threshold))
    await model_changes.start(promoted if promoted is not None else cfg.model_path)
    server.add_generic_rpc_handlers(
        [
            service_handler(
                IdentityServicer(stitcher, cfg.data_dir / "snapshots", model_changes),
                prechecks,
                limits,
                authoriser.admit,
            )
        ]
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if cfg.reflection:
        services = [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(services, server)
    if cfg.bench_noop:
        server.add_generic_rpc_handlers([_noop_handler(authoriser.admit)])
    address = f"{cfg.host}:{cfg.port}"
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
        mtls = cfg.tls_client_ca_file is not None
        log.info("TLS on; %s", "client certificates required (mTLS)" if mtls else "no client certificates")
    if port == 0:
        await stitcher.close()
        raise OSError(f"cannot listen on {cfg.host}:{cfg.port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, stitcher, health, port, cfg.shutdown_grace_seconds)


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    running = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Tests and scripts wait for this line to learn the port (which may have been 0).
    print(f"idstitch listening on {settings.server.host}:{running.port}", flush=True)
    log.info(
        "serving %d identifiers in %d persons from %s",
        running.stitcher.identifier_count,
        running.stitcher.person_count,
        settings.server.database,
    )
    await stop.wait()
    log.info("shutting down: finishing in-flight calls")
    await running.stop()
    log.info("stopped")


def _load_model(path: Path | None, threshold: float | None) -> linkage.VisitorModel | None:
    if path is None:
        log.info("no visitor model: stitching deterministically only")
        return None
    model = linkage.VisitorModel.load(path, threshold)
    log.info("visitor model %s from %s, soft links at probability >= %s", model.version, path, model.threshold)
    return model


def _load_customer_model(path: Path | None, threshold: float | None) -> linkage.CustomerModel | None:
    if path is None:
        log.info("no customer model: customer records link by exact keys only")
        return None
    model = linkage.CustomerModel.load(path, threshold)
    log.info("customer model %s from %s, soft links at probability >= %s", model.version, path, model.threshold)
    return model


def _noop_handler(admit: Admit) -> grpc.GenericRpcHandler:
    """Same messages, same stack (authorisation included), no work: the ceiling for Resolve in the benchmark."""

    async def resolve(request: pb.ResolveRequest, context: grpc.aio.ServicerContext) -> pb.ResolveResponse:
        await admit(NOOP_RESOLVE, context)
        return pb.ResolveResponse()

    return grpc.method_handlers_generic_handler(
        NOOP_SERVICE,
        {
            "Resolve": grpc.unary_unary_rpc_method_handler(
                resolve,
                request_deserializer=pb.ResolveRequest.FromString,
                response_serializer=pb.ResolveResponse.SerializeToString,
            )
        },
    )
