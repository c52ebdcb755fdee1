"""The IdentityService servicer: convert, call the core, convert back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

import linkage

from . import _convert as convert
from ._auth import principal_of
from ._errors import status_from_errors
from ._feed import EncodedChanges
from ._models import ModelChanges
from ._proto.idstitch.v1 import idstitch_pb2 as pb
from ._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc
from ._relink import relink_updates

# A `ChangeBatch` holds up to this many changes (≈ 750 KB), of the commits of up to this many
# seconds: a follower at the head gets a few messages a second, whatever the commit rate.
BATCH_PAGE = 5000
BATCH_LINGER = 0.05


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, stitcher: linkage.Stitcher, snapshots: Path, models: ModelChanges) -> None:
        self._stitcher = stitcher
        self._snapshots = snapshots
        self._models = models
        self._encoded = EncodedChanges(BATCH_PAGE)
        stitcher.while_committing(self._encoded.encode_ahead)

    async def Ingest(self, request: pb.IngestRequest, context: grpc.aio.ServicerContext) -> pb.IngestResponse:
        async with status_from_errors(context, "Ingest"):
            results = await self._stitcher.ingest(convert.signals(request))
            return convert.ingest_response(results)

    async def IngestStream(
        self, request_iterator: AsyncIterator[pb.IngestRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.IngestResponse]:
        async with status_from_errors(context, "IngestStream"):
            async for request in request_iterator:
                results = await self._stitcher.ingest(convert.signals(request))
                yield convert.ingest_response(results)

    async def Resolve(self, request: pb.ResolveRequest, context: grpc.aio.ServicerContext) -> pb.ResolveResponse:
        async with status_from_errors(context, "Resolve"):
            min_probability, deterministic_only = convert.confidence(request)
            resolutions = self._stitcher.resolve(
                convert.identifiers(request.identifiers), min_probability, deterministic_only
            )
            return convert.resolve_response(resolutions)

    async def GetPerson(self, request: pb.GetPersonRequest, context: grpc.aio.ServicerContext) -> pb.GetPersonResponse:
        async with status_from_errors(context, "GetPerson"):
            selector = request.WhichOneof("selector")
            if selector == "person_id":
                view = self._stitcher.person(convert.parse_person_id(request.person_id))
            elif selector == "identifier":
                view = self._stitcher.person_of(convert.identifier(request.identifier))
            else:
                raise linkage.InvalidArgument("selector", "give person_id or identifier")
            return pb.GetPersonResponse(person=convert.person(view))

    async def GetHousehold(
        self, request: pb.GetHouseholdRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetHouseholdResponse:
        async with status_from_errors(context, "GetHousehold"):
            selector = request.WhichOneof("selector")
            if selector == "household_id":
                view = self._stitcher.household(convert.parse_household_id(request.household_id))
            elif selector == "identifier":
                view = self._stitcher.household_of(convert.identifier(request.identifier))
            else:
                raise linkage.InvalidArgument("selector", "give household_id or identifier")
            return convert.household(view)

    async def WatchChanges(
        self, request: pb.WatchChangesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async with status_from_errors(context, "WatchChanges"):
            await self._stitcher.record_read(
                principal_of(context), "watch_changes", f"after sequence {request.after_sequence}"
            )
            async for change in self._stitcher.changes(request.after_sequence, follow=not request.stop_at_end):
                yield self._encoded.encode(change)  # serialized once for every subscriber

    async def WatchChangeBatches(
        self, request: pb.WatchChangesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async with status_from_errors(context, "WatchChangeBatches"):
            await self._stitcher.record_read(
                principal_of(context), "watch_changes", f"after sequence {request.after_sequence}", "batches"
            )
            pages = self._stitcher.change_pages(
                request.after_sequence, follow=not request.stop_at_end, page_size=BATCH_PAGE, linger=BATCH_LINGER
            )
            self._encoded.followers += 1
            try:
                async for page in pages:
                    yield self._encoded.encode_batch(page)
            finally:
                self._encoded.followers -= 1

    async def Explain(self, request: pb.ExplainRequest, context: grpc.aio.ServicerContext) -> pb.ExplainResponse:
        async with status_from_errors(context, "Explain"):
            for name in ("a", "b"):
                if not request.HasField(name):
                    raise linkage.InvalidArgument(name, "required")
            explained = self._stitcher.explain(convert.identifier(request.a), convert.identifier(request.b))
            return convert.explanation(explained)

    async def SyncCrmRecords(
        self, request_iterator: AsyncIterator[pb.SyncCrmRecordsRequest], context: grpc.aio.ServicerContext
    ) -> pb.SyncCrmRecordsResponse:
        async with status_from_errors(context, "SyncCrmRecords"), self._stitcher.sync_turn():
            records: list[linkage.CustomerRecord] = []
            async for request in request_iterator:
                self._stitcher.check_sync_chunk(len(request.records), len(records))
                records.extend(convert.customer_record(r) for r in request.records)
            summary = await self._stitcher.sync_customer_records(records)
            return convert.sync_response(summary)

    async def Forget(self, request: pb.ForgetRequest, context: grpc.aio.ServicerContext) -> pb.ForgetResponse:
        async with status_from_errors(context, "Forget"):
            person_id, identifier = convert.forget_selector(request)
            erased = await self._stitcher.forget(person_id, identifier, principal=principal_of(context))
            return convert.forget_response(erased)

    async def LiftSuppression(
        self, request: pb.LiftSuppressionRequest, context: grpc.aio.ServicerContext
    ) -> pb.LiftSuppressionResponse:
        async with status_from_errors(context, "LiftSuppression"):
            identifiers = convert.identifiers(request.identifiers)
            lifted = await self._stitcher.lift_suppression(identifiers, principal=principal_of(context))
            return pb.LiftSuppressionResponse(lifted=lifted)

    async def WriteSnapshot(
        self, request: pb.WriteSnapshotRequest, context: grpc.aio.ServicerContext
    ) -> pb.WriteSnapshotResponse:
        async with status_from_errors(context, "WriteSnapshot"):
            self._snapshots.mkdir(mode=0o700, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            directory = self._snapshots / f"{stamp}-{time.time_ns() % 10**9:09d}"
            profiles = request.visitor_profiles or request.visitor_profiles_only
            counts = await self._stitcher.write_snapshot(
                directory, principal_of(context), visitor_profiles=profiles, history=not request.visitor_profiles_only
            )
            return convert.snapshot_response(directory, counts, self._stitcher.visitor_model, profiles)

    async def PromoteModel(
        self, request: pb.PromoteModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelChangeResponse:
        async with status_from_errors(context, "PromoteModel"):
            changed = await self._models.promote(
                request.model_json, request.metrics_json, request.version, principal_of(context)
            )
            return convert.model_change(*changed)

    async def RollbackModel(
        self, request: pb.RollbackModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelChangeResponse:
        async with status_from_errors(context, "RollbackModel"):
            return convert.model_change(*await self._models.rollback(principal_of(context)))

    async def AddModel(self, request: pb.AddModelRequest, context: grpc.aio.ServicerContext) -> pb.ModelEntry:
        async with status_from_errors(context, "AddModel"):
            entry = await self._models.add(request.model_json, request.metrics_json, principal_of(context))
            return convert.model_entry(entry)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        async with status_from_errors(context, "ListModels"):
            return pb.ListModelsResponse(models=[convert.model_entry(row) for row in await self._models.list()])

    async def Relink(
        self, request: pb.RelinkRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RelinkProgress]:
        async with status_from_errors(context, "Relink"):
            async for update in relink_updates(self._stitcher, principal_of(context)):
                yield update

    async def RelinkScored(
        self, request_iterator: AsyncIterator[pb.ScoredPairs], context: grpc.aio.ServicerContext
    ) -> pb.RelinkProgress:
        async with status_from_errors(context, "RelinkScored"):
            pairs = await convert.scored_pairs(request_iterator)
            relinked = await self._stitcher.relink_scored(*pairs, principal=principal_of(context))
            return convert.relink_progress(relinked, relinked.scored, done=True)

    async def ListAudit(self, request: pb.ListAuditRequest, context: grpc.aio.ServicerContext) -> pb.ListAuditResponse:
        async with status_from_errors(context, "ListAudit"):
            entries = await self._stitcher.audit_log(request.after_sequence, request.limit or 1000)
            return convert.audit_response(entries)
