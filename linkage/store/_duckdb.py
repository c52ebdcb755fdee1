"""The default `Store`: one embedded DuckDB file, written in one transaction per commit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from .._types import AuditEntry, Change, ChangeKind
from ..identifiers._namespaces import KEY_SEPARATOR
from ._rows import (
    CommitBatch,
    CustomerRecordRow,
    Erasure,
    EventRow,
    HouseholdLinkRow,
    IdentifierRow,
    ModelRow,
    PersonRow,
    ReplacedLinkRow,
    SoftLinkRow,
    StoredState,
    SuppressionRow,
)

# 2: soft_links table, changes.probability; 3: customer_records table, persons.erased;
# 4: household_links table, changes.household_id and household_persons; 5: suppressed, audit;
# 6: models (the model registry), events.digest; 7: replaced_links, changes.model_version and
# previous_model_version
SCHEMA_VERSION = 7
# Versions this build opens, bringing them up to SCHEMA_VERSION with the CREATE ... IF NOT EXISTS.
_UPGRADABLE = {2, 3, 4, 5, 6}

# Times are TIMESTAMP in UTC, written and read as whole microseconds since the epoch.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS persons (
    person_id BIGINT PRIMARY KEY,
    first_seen TIMESTAMP,
    last_seen TIMESTAMP,
    merged_into BIGINT,
    channels VARCHAR[],
    erased BOOLEAN  -- Forget: the row stays, empty, so the id is never reused
);
ALTER TABLE persons ADD COLUMN IF NOT EXISTS erased BOOLEAN;
CREATE TABLE IF NOT EXISTS identifiers (
    key VARCHAR PRIMARY KEY,
    namespace VARCHAR NOT NULL,
    value VARCHAR NOT NULL,
    person_id BIGINT NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    shared BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    event_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    channel VARCHAR,
    person_id BIGINT NOT NULL,
    identifier_keys VARCHAR[],
    ip VARCHAR,
    country VARCHAR,
    city VARCHAR,
    latitude DOUBLE,
    longitude DOUBLE,
    user_agent VARCHAR
);
-- The keyed digest of event_id the idempotency window keeps (a restart reads it, not rehashes).
ALTER TABLE events ADD COLUMN IF NOT EXISTS digest VARCHAR;
CREATE TABLE IF NOT EXISTS soft_links (
    component_id BIGINT PRIMARY KEY,
    target_id BIGINT NOT NULL,
    probability DOUBLE NOT NULL,
    match_weight DOUBLE NOT NULL,
    model_version VARCHAR NOT NULL,
    weight_names VARCHAR[] NOT NULL,
    weights DOUBLE[] NOT NULL,
    linked_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS household_links (
    component_id BIGINT PRIMARY KEY,
    persons BIGINT[] NOT NULL,
    probability DOUBLE NOT NULL,
    model_version VARCHAR NOT NULL,
    linked_at TIMESTAMP NOT NULL
);
-- Keyed hashes of erased identifier keys and event ids: what comes back of them is refused.
CREATE TABLE IF NOT EXISTS suppressed (
    digest VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    person_id BIGINT NOT NULL,
    erased_at TIMESTAMP NOT NULL
);
-- Who erased, lifted an erasure, compacted or read in bulk: ids and counts, no personal values.
CREATE TABLE IF NOT EXISTS audit (
    sequence BIGINT NOT NULL,
    ts TIMESTAMP NOT NULL,
    principal VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    subject VARCHAR,
    detail VARCHAR
);
-- Customer attributes are personal data: here only, for matching, deleted with the person.
CREATE TABLE IF NOT EXISTS customer_records (
    key VARCHAR PRIMARY KEY,
    given_name VARCHAR,
    family_name VARCHAR,
    date_of_birth VARCHAR,
    address VARCHAR,
    postcode VARCHAR,
    city VARCHAR,
    document_id VARCHAR,
    fingerprint VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    sequence BIGINT NOT NULL,
    ts TIMESTAMP NOT NULL,
    kind VARCHAR NOT NULL,
    person_id BIGINT NOT NULL,
    other_person_id BIGINT,
    namespace VARCHAR,
    value VARCHAR,
    event_id VARCHAR,
    detail VARCHAR,
    probability DOUBLE,
    household_id BIGINT,
    household_persons BIGINT[]
);
ALTER TABLE changes ADD COLUMN IF NOT EXISTS household_id BIGINT;
ALTER TABLE changes ADD COLUMN IF NOT EXISTS household_persons BIGINT[];
ALTER TABLE changes ADD COLUMN IF NOT EXISTS model_version VARCHAR;
ALTER TABLE changes ADD COLUMN IF NOT EXISTS previous_model_version VARCHAR;
-- The links the last model change (promote, rollback) replaced, as they were before it: a soft
-- link (target_id and after), a household link (household_*), or neither. A rollback reads them.
CREATE TABLE IF NOT EXISTS replaced_links (
    component_id BIGINT PRIMARY KEY,
    model_change VARCHAR NOT NULL,
    target_id BIGINT,
    probability DOUBLE,
    match_weight DOUBLE,
    model_version VARCHAR,
    weight_names VARCHAR[],
    weights DOUBLE[],
    linked_at TIMESTAMP,
    household_persons BIGINT[],
    household_probability DOUBLE,
    household_model_version VARCHAR,
    household_linked_at TIMESTAMP
);
-- The model registry: every visitor model ever proposed or in force, and its metrics file.
CREATE TABLE IF NOT EXISTS models (
    version VARCHAR PRIMARY KEY,
    state VARCHAR NOT NULL,
    added_at TIMESTAMP NOT NULL,
    added_by VARCHAR NOT NULL,
    changed_at TIMESTAMP NOT NULL,
    metrics VARCHAR
);
"""
_TABLES = (
    "meta",
    "persons",
    "identifiers",
    "events",
    "soft_links",
    "household_links",
    "customer_records",
    "changes",
    "suppressed",
    "audit",
    "models",
    "replaced_links",
)

# Each commit hands DuckDB one Arrow table per table it writes (columns built from Python lists
# in C): one statement per table per commit, whatever the batch size. "ts" columns are whole
# microseconds since the epoch and become TIMESTAMP.
_TS = "ts"
_STR, _INT, _FLOAT = pa.string(), pa.int64(), pa.float64()
_SOFT_LINK_COLUMNS = (_INT, _INT, _FLOAT, _FLOAT, _STR, pa.list_(_STR), pa.list_(_FLOAT), _TS)
_WRITES: dict[str, tuple[str, tuple[pa.DataType | str, ...]]] = {
    "identifiers": ("INSERT OR REPLACE", (_STR, _STR, _STR, _INT, _TS, _TS, pa.bool_())),
    "persons": ("INSERT OR REPLACE", (_INT, _TS, _TS, _INT, pa.list_(_STR), pa.bool_())),
    "events": ("INSERT", (_STR, _TS, _TS, _STR, _INT, pa.list_(_STR), _STR, _STR, _STR, _FLOAT, _FLOAT, _STR, _STR)),
    "changes": (
        "INSERT",
        (_INT, _TS, _STR, _INT, _INT, _STR, _STR, _STR, _STR, _FLOAT, _INT, pa.list_(_INT), _STR, _STR),
    ),
    "soft_links": ("INSERT OR REPLACE", _SOFT_LINK_COLUMNS),
    "household_links": ("INSERT OR REPLACE", (_INT, pa.list_(_INT), _FLOAT, _STR, _TS)),
    "suppressed": ("INSERT OR REPLACE", (_STR, _STR, _INT, _TS)),
    "audit": ("INSERT", (_INT, _TS, _STR, _STR, _STR, _STR)),
    "models": ("INSERT OR REPLACE", (_STR, _STR, _TS, _STR, _TS, _STR)),
    "customer_records": ("INSERT OR REPLACE", (*(_STR,) * 9, _TS)),
    # The first state a model change met is what it replaced: later rows of a component are ignored.
    "replaced_links": ("INSERT OR IGNORE", (_INT, _STR, *_SOFT_LINK_COLUMNS[1:], pa.list_(_INT), _FLOAT, _STR, _TS)),
}


def _write(con: duckdb.DuckDBPyConnection, table: str, columns: list[Sequence[object]]) -> None:
    verb, types = _WRITES[table]
    arrow = pa.table(
        {
            f"c{i}": pa.array(column, type=_INT if kind == _TS else kind)
            for i, (column, kind) in enumerate(zip(columns, types, strict=True))
        }
    )
    select = ", ".join(f"make_timestamp(c{i})" if kind == _TS else f"c{i}" for i, kind in enumerate(types))
    con.register("idstitch_batch", arrow)
    try:
        con.execute(f"{verb} INTO {table} SELECT {select} FROM idstitch_batch")
    finally:
        con.unregister("idstitch_batch")


class StoreLocked(RuntimeError):
    """Another process owns the store file."""


class DuckDBStore:
    """A `Store` in one DuckDB file. Each `commit` is one transaction, durable when it returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(f"cannot open {self.path}: {exc}") from exc
            raise RuntimeError(f"cannot open {self.path}: {exc}") from exc
        try:
            version = self._version()
            # Checked before the schema runs: a file this build refuses is left untouched.
            if version is not None and version != SCHEMA_VERSION and version not in _UPGRADABLE:
                raise RuntimeError(f"{self.path} has schema version {version}, this build reads {SCHEMA_VERSION}")
            self._con.execute(_SCHEMA)
            if version is None:
                self._con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            elif version != SCHEMA_VERSION:
                self._con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
        except BaseException:
            self._con.close()
            raise

    def _version(self) -> int | None:
        has_meta = self._con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = 'meta'"
        ).fetchone()
        if not has_meta or not has_meta[0]:
            return None
        row = self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return None if row is None else int(row[0])

    def load(self, events_since: float = 0.0) -> StoredState:
        con = self._con
        identifiers = [
            IdentifierRow(key, ns, value, pid, first / 1e6, last / 1e6, shared)
            for key, ns, value, pid, first, last, shared in con.execute(
                "SELECT key, namespace, value, person_id, epoch_us(first_seen), epoch_us(last_seen), shared "
                "FROM identifiers"
            ).fetchall()
        ]
        persons = [
            PersonRow(pid, (first or 0) / 1e6, (last or 0) / 1e6, merged, tuple(channels or ()), bool(erased))
            for pid, first, last, merged, channels, erased in con.execute(
                "SELECT person_id, epoch_us(first_seen), epoch_us(last_seen), merged_into, channels, erased "
                "FROM persons"
            ).fetchall()
        ]
        events = [
            (digest or "", event_id, person_id, at / 1e6)
            for digest, event_id, person_id, at in con.execute(
                "SELECT digest, event_id, person_id, epoch_us(received_at) FROM events "
                "WHERE received_at >= make_timestamp($1) ORDER BY received_at",
                [int(events_since * 1e6)],
            ).fetchall()
        ]
        row = con.execute("SELECT coalesce(max(sequence), 0) FROM changes").fetchone()
        soft_links = [
            SoftLinkRow(c, t, p, w, v, tuple(names), tuple(weights), at / 1e6)
            for c, t, p, w, v, names, weights, at in con.execute(
                "SELECT component_id, target_id, probability, match_weight, model_version, weight_names, weights, "
                "epoch_us(linked_at) FROM soft_links"
            ).fetchall()
        ]
        customer_records = [
            CustomerRecordRow(key, given, family, born, address, postcode, city, document, fingerprint, at / 1e6)
            for key, given, family, born, address, postcode, city, document, fingerprint, at in con.execute(
                "SELECT key, given_name, family_name, date_of_birth, address, postcode, city, document_id, "
                "fingerprint, epoch_us(updated_at) FROM customer_records"
            ).fetchall()
        ]
        household_links = [
            HouseholdLinkRow(c, tuple(persons), p, v, at / 1e6)
            for c, persons, p, v, at in con.execute(
                "SELECT component_id, persons, probability, model_version, epoch_us(linked_at) FROM household_links"
            ).fetchall()
        ]
        suppressed = {digest for (digest,) in con.execute("SELECT digest FROM suppressed").fetchall()}
        replaced = [
            ReplacedLinkRow(
                c,
                change,
                SoftLinkRow(c, t, p, w, v, tuple(names), tuple(weights), at / 1e6) if t is not None else None,
                HouseholdLinkRow(c, tuple(persons), hp, hv, hat / 1e6) if persons is not None else None,
            )
            for c, change, t, p, w, v, names, weights, at, persons, hp, hv, hat in con.execute(
                "SELECT component_id, model_change, target_id, probability, match_weight, model_version, "
                "weight_names, weights, epoch_us(linked_at), household_persons, household_probability, "
                "household_model_version, epoch_us(household_linked_at) FROM replaced_links ORDER BY component_id"
            ).fetchall()
        ]
        (audited,) = con.execute("SELECT coalesce(max(sequence), 0) FROM audit").fetchone() or (0,)
        meta = dict(con.execute("SELECT key, value FROM meta WHERE key LIKE 'model_change%'").fetchall())
        return StoredState(
            identifiers,
            persons,
            events,
            int(row[0]) if row else 0,
            soft_links,
            customer_records,
            household_links,
            suppressed,
            int(audited),
            replaced,
            meta.get("model_change", ""),
            float(meta.get("model_change_at", 0.0)),
        )

    def commit(self, batch: CommitBatch) -> None:
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            if batch.removed_identifiers:
                con.execute(
                    "DELETE FROM identifiers WHERE key IN (SELECT unnest($1::VARCHAR[]))", [batch.removed_identifiers]
                )
            if batch.identifiers:
                _write(con, "identifiers", _identifier_columns(batch.identifiers))
            if batch.persons:
                _write(con, "persons", _person_columns(batch.persons))
            if batch.events:
                _write(con, "events", _event_columns(batch.events))
            if batch.changes:
                _write(con, "changes", _change_columns(batch.changes))
            if batch.removed_soft_links:
                con.execute(
                    "DELETE FROM soft_links WHERE component_id IN (SELECT unnest($1::BIGINT[]))",
                    [batch.removed_soft_links],
                )
            if batch.soft_links:
                _write(con, "soft_links", _soft_link_columns(batch.soft_links))
            if batch.removed_household_links:
                con.execute(
                    "DELETE FROM household_links WHERE component_id IN (SELECT unnest($1::BIGINT[]))",
                    [batch.removed_household_links],
                )
            if batch.household_links:
                _write(con, "household_links", _household_link_columns(batch.household_links))
            if batch.customer_records:
                _write(con, "customer_records", _customer_record_columns(batch.customer_records))
            if batch.suppressions:
                _write(con, "suppressed", _suppression_columns(batch.suppressions))
            if batch.lifted_suppressions:
                con.execute(
                    "DELETE FROM suppressed WHERE digest IN (SELECT unnest($1::VARCHAR[]))", [batch.lifted_suppressions]
                )
            if batch.audit:
                _write(con, "audit", _audit_columns(batch.audit))
            if batch.model_change is not None:
                con.execute("DELETE FROM replaced_links")
                label, at = batch.model_change
                con.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('model_change', ?), ('model_change_at', ?)", [label, str(at)]
                )
            if batch.replaced_links:
                _write(con, "replaced_links", _replaced_link_columns(batch.replaced_links))
            for erasure in batch.erasures:
                _erase(con, erasure)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def changes_after(self, sequence: int, limit: int) -> list[Change]:
        # A cursor is a connection of its own: safe beside a commit running in another thread.
        cursor = self._con.cursor()
        try:
            rows = cursor.execute(
                "SELECT sequence, epoch_us(ts), kind, person_id, other_person_id, namespace, value, event_id, detail, "
                "probability, household_id, household_persons, model_version, previous_model_version "
                "FROM changes WHERE sequence > ? ORDER BY sequence LIMIT ?",
                [sequence, limit],
            ).fetchall()
        finally:
            cursor.close()
        return [
            Change(
                seq,
                ts / 1e6,
                ChangeKind(kind),
                pid,
                other,
                ns or "",
                value or "",
                event or "",
                detail or "",
                p or 0.0,
                household,
                tuple(members or ()),
                version or "",
                previous or "",
            )
            for seq, ts, kind, pid, other, ns, value, event, detail, p, household, members, version, previous in rows
        ]

    def audit_after(self, sequence: int, limit: int) -> list[AuditEntry]:
        cursor = self._con.cursor()
        try:
            rows = cursor.execute(
                "SELECT sequence, epoch_us(ts), principal, action, subject, detail FROM audit "
                "WHERE sequence > ? ORDER BY sequence LIMIT ?",
                [sequence, limit],
            ).fetchall()
        finally:
            cursor.close()
        return [
            AuditEntry(seq, ts / 1e6, who, what, subject or "", detail or "")
            for seq, ts, who, what, subject, detail in rows
        ]

    def append_audit(self, principal: str, action: str, subject: str = "", detail: str = "", at: float = 0.0) -> None:
        """One audit entry outside a commit (an offline operation such as compaction)."""
        (last,) = self._con.execute("SELECT coalesce(max(sequence), 0) FROM audit").fetchone() or (0,)
        entry = AuditEntry(int(last) + 1, at, principal, action, subject, detail)
        self._con.execute("BEGIN TRANSACTION")
        try:
            _write(self._con, "audit", _audit_columns([entry]))
            self._con.execute("COMMIT")
        except BaseException:
            self._con.execute("ROLLBACK")
            raise

    def history_mark(self) -> tuple[int, int, int]:
        cursor = self._con.cursor()
        try:
            ((last,),) = cursor.execute("SELECT coalesce(max(sequence), 0) FROM changes").fetchall()
            ((count, latest),) = cursor.execute(
                "SELECT count(*), coalesce(max(epoch_us(received_at)), 0) FROM events"
            ).fetchall()
        finally:
            cursor.close()
        return int(last), int(count), int(latest)

    def put_model(self, row: ModelRow) -> None:
        """Add or update one model of the registry, in a transaction of its own (beside commits)."""
        cursor = self._con.cursor()
        try:
            cursor.execute("BEGIN TRANSACTION")
            columns: list[Sequence[object]] = [[row.version], [row.state], _micros([row.added_at]), [row.added_by],
                       _micros([row.changed_at]), [row.metrics]]  # fmt: skip
            _write(cursor, "models", columns)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    def models(self) -> list[ModelRow]:
        """The model registry, oldest first."""
        cursor = self._con.cursor()
        try:
            rows = cursor.execute(
                "SELECT version, state, epoch_us(added_at), added_by, epoch_us(changed_at), metrics FROM models "
                "ORDER BY added_at, version"
            ).fetchall()
        finally:
            cursor.close()
        return [ModelRow(v, s, a / 1e6, by, c / 1e6, m or "") for v, s, a, by, c, m in rows]

    def write_snapshot(self, directory: Path) -> dict[str, int]:
        """Write the history training reads — identifiers (key, namespace, person) and events —
        as Parquet files into `directory` (made here), from one transaction: a consistent
        snapshot while commits go on. Rows per file."""
        directory.mkdir(mode=0o700)
        cursor = self._con.cursor()  # a connection of its own, beside commits in another thread
        try:
            cursor.execute("BEGIN TRANSACTION")
            counts = {}
            for name, query in _SNAPSHOT.items():
                target = _quoted(str(directory / f"{name}.parquet"))
                (counts[name],) = cursor.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet)").fetchone() or (0,)
            cursor.execute("COMMIT")
        finally:
            cursor.close()
        return counts

    def iter_events(self, page: int = 50_000) -> Iterator[EventRow]:
        cursor = self._con.cursor()
        try:
            result = cursor.execute(
                "SELECT event_id, epoch_us(ts), epoch_us(received_at), channel, person_id, identifier_keys, ip, "
                "country, city, latitude, longitude, user_agent FROM events ORDER BY ts, received_at"
            )
            while rows := result.fetchmany(page):
                for eid, ts, received, channel, pid, keys, ip, country, city, lat, lon, ua in rows:
                    yield EventRow(
                        eid,
                        ts / 1e6,
                        received / 1e6,
                        channel or "",
                        pid,
                        tuple(keys or ()),
                        ip or "",
                        country or "",
                        city or "",
                        lat,
                        lon,
                        ua or "",
                    )
        finally:
            cursor.close()

    def copy_to(self, target: Path) -> dict[str, int]:
        """Write every row into a new store file at `target` (rows per table): what is left of
        deleted rows stays behind. Fails, copying nothing, on a table this build does not know,
        and fails if the copy's counts differ from the original's."""
        con = self._con
        con.execute("CHECKPOINT")
        (source,) = con.execute("SELECT current_database()").fetchone() or ("",)
        tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [source]).fetchall()
        unknown = sorted({name for (name,) in tables} - set(_TABLES))
        if unknown:
            raise RuntimeError(f"{self.path} has tables this build does not know ({', '.join(unknown)})")
        con.execute(f"ATTACH '{_quoted(str(target))}' AS idstitch_compacted")
        try:
            con.execute("USE idstitch_compacted")
            con.execute(_SCHEMA)
            con.execute(f'USE "{source}"')
            con.execute("BEGIN TRANSACTION")
            try:
                for table in _TABLES:
                    target_table, source_table = f"idstitch_compacted.main.{table}", f'"{source}".main.{table}'
                    con.execute(f"INSERT INTO {target_table} BY NAME SELECT * FROM {source_table}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            rows: dict[str, int] = {}
            for table in _TABLES:
                (copied,) = con.execute(f"SELECT count(*) FROM idstitch_compacted.main.{table}").fetchone() or (0,)
                (original,) = con.execute(f'SELECT count(*) FROM "{source}".main.{table}').fetchone() or (0,)
                if copied != original:
                    raise RuntimeError(f"compaction copied {copied} of {original} rows of {table}")
                rows[table] = int(copied)
            con.execute("CHECKPOINT idstitch_compacted")
        finally:
            con.execute(f'USE "{source}"')
            con.execute("DETACH idstitch_compacted")
        return rows

    def close(self) -> None:
        self._con.execute("CHECKPOINT")
        self._con.close()


# What a training snapshot holds, as the queries that write it (times as epoch microseconds).
_SNAPSHOT = {
    "identifiers": "SELECT key, namespace, person_id FROM identifiers",
    "events": "SELECT event_id, epoch_us(ts) AS ts, epoch_us(received_at) AS received_at, channel, person_id, "
    "identifier_keys, ip, country, city, latitude, longitude, user_agent FROM events",
}


def _quoted(literal: str) -> str:
    return literal.replace("'", "''")


def _erase(con: duckdb.DuckDBPyConnection, erasure: Erasure) -> None:
    """Delete what is left of an erased person, inside the commit's transaction: its events
    (IP, geo, user agent), identifiers, customer records and soft links; scrub the identifiers
    out of the change log's entries about it, and the erased events' ids out of the log."""
    ids, keys = list(erasure.person_ids), list(erasure.keys)
    rows = con.execute(
        "DELETE FROM events WHERE person_id IN (SELECT unnest($1::BIGINT[])) "
        "OR list_has_any(identifier_keys, $2::VARCHAR[]) RETURNING event_id",
        [ids, keys],
    ).fetchall()
    erasure.events = tuple(row[0] for row in rows)
    con.execute("DELETE FROM identifiers WHERE key IN (SELECT unnest($1::VARCHAR[]))", [keys])
    con.execute("DELETE FROM customer_records WHERE key IN (SELECT unnest($1::VARCHAR[]))", [keys])
    con.execute(
        "DELETE FROM soft_links WHERE component_id IN (SELECT unnest($1::BIGINT[])) "
        "OR target_id IN (SELECT unnest($1::BIGINT[]))",
        [ids],
    )
    con.execute(
        "DELETE FROM household_links WHERE component_id IN (SELECT unnest($1::BIGINT[])) "
        "OR list_has_any(persons, $1::BIGINT[])",
        [ids],
    )
    con.execute(
        "DELETE FROM replaced_links WHERE component_id IN (SELECT unnest($1::BIGINT[])) "
        "OR target_id IN (SELECT unnest($1::BIGINT[])) OR list_has_any(household_persons, $1::BIGINT[])",
        [ids],
    )
    con.execute(
        "UPDATE changes SET namespace = NULL, value = NULL "
        "WHERE namespace IS NOT NULL AND (person_id IN (SELECT unnest($1::BIGINT[])) "
        "OR namespace || $3 || value IN (SELECT unnest($2::VARCHAR[])))",
        [ids, keys, KEY_SEPARATOR],
    )
    # The erased events' ids go from the log too: they are kept only as keyed hashes (suppressed).
    con.execute(
        "UPDATE changes SET event_id = NULL WHERE event_id IN (SELECT unnest($1::VARCHAR[]))", [list(erasure.events)]
    )


def _micros(seconds: Iterable[float]) -> list[int]:
    # Times are whole microseconds in the core (see `quantize`), so this round-trips exactly.
    return [round(t * 1_000_000) for t in seconds]


def _soft_link_columns(rows: list[SoftLinkRow]) -> list[Sequence[object]]:
    return [
        [r.component for r in rows],
        [r.target for r in rows],
        [r.probability for r in rows],
        [r.match_weight for r in rows],
        [r.model_version for r in rows],
        [list(r.weight_names) for r in rows],
        [list(r.weights) for r in rows],
        _micros(r.linked_at for r in rows),
    ]


def _identifier_columns(rows: list[IdentifierRow]) -> list[Sequence[object]]:
    return [
        [r.key for r in rows],
        [r.namespace for r in rows],
        [r.value for r in rows],
        [r.person_id for r in rows],
        _micros(r.first_seen for r in rows),
        _micros(r.last_seen for r in rows),
        [r.shared for r in rows],
    ]


def _person_columns(rows: list[PersonRow]) -> list[Sequence[object]]:
    return [
        [r.person_id for r in rows],
        _micros(r.first_seen for r in rows),
        _micros(r.last_seen for r in rows),
        [r.merged_into for r in rows],
        [list(r.channels) for r in rows],
        [r.erased for r in rows],
    ]


def _event_columns(rows: list[EventRow]) -> list[Sequence[object]]:
    return [
        [r.event_id for r in rows],
        _micros(r.timestamp for r in rows),
        _micros(r.received_at for r in rows),
        [r.channel for r in rows],
        [r.person_id for r in rows],
        [list(r.identifier_keys) for r in rows],
        [r.ip for r in rows],
        [r.country for r in rows],
        [r.city for r in rows],
        [r.latitude for r in rows],
        [r.longitude for r in rows],
        [r.user_agent for r in rows],
        [r.digest or None for r in rows],
    ]


def _change_columns(rows: list[Change]) -> list[Sequence[object]]:
    return [
        [c.sequence for c in rows],
        _micros(c.time for c in rows),
        [c.kind.value for c in rows],
        [c.person_id for c in rows],
        [c.other_person_id for c in rows],
        [c.namespace for c in rows],
        [c.value for c in rows],
        [c.event_id for c in rows],
        [c.detail for c in rows],
        [c.probability for c in rows],
        [c.household_id for c in rows],
        [list(c.household_persons) if c.household_id is not None else None for c in rows],
        [c.model_version or None for c in rows],
        [c.previous_model_version or None for c in rows],
    ]


def _replaced_link_columns(rows: list[ReplacedLinkRow]) -> list[Sequence[object]]:
    soft = [r.soft_link for r in rows]
    household = [r.household_link for r in rows]
    return [
        [r.component for r in rows],
        [r.model_change for r in rows],
        [s.target if s else None for s in soft],
        [s.probability if s else None for s in soft],
        [s.match_weight if s else None for s in soft],
        [s.model_version if s else None for s in soft],
        [list(s.weight_names) if s else None for s in soft],
        [list(s.weights) if s else None for s in soft],
        [round(s.linked_at * 1_000_000) if s else None for s in soft],
        [list(h.persons) if h else None for h in household],
        [h.probability if h else None for h in household],
        [h.model_version if h else None for h in household],
        [round(h.linked_at * 1_000_000) if h else None for h in household],
    ]


def _suppression_columns(rows: list[SuppressionRow]) -> list[Sequence[object]]:
    return [
        [r.digest for r in rows],
        [r.kind for r in rows],
        [r.person_id for r in rows],
        _micros(r.erased_at for r in rows),
    ]


def _audit_columns(rows: list[AuditEntry]) -> list[Sequence[object]]:
    return [
        [a.sequence for a in rows],
        _micros(a.time for a in rows),
        [a.principal for a in rows],
        [a.action for a in rows],
        [a.subject for a in rows],
        [a.detail for a in rows],
    ]


def _household_link_columns(rows: list[HouseholdLinkRow]) -> list[Sequence[object]]:
    return [
        [r.component for r in rows],
        [list(r.persons) for r in rows],
        [r.probability for r in rows],
        [r.model_version for r in rows],
        _micros(r.linked_at for r in rows),
    ]


def _customer_record_columns(rows: list[CustomerRecordRow]) -> list[Sequence[object]]:
    return [
        [r.key for r in rows],
        [r.given_name for r in rows],
        [r.family_name for r in rows],
        [r.date_of_birth for r in rows],
        [r.address for r in rows],
        [r.postcode for r in rows],
        [r.city for r in rows],
        [r.document_id for r in rows],
        [r.fingerprint for r in rows],
        _micros(r.updated_at for r in rows),
    ]
