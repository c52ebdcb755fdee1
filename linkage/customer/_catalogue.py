"""The customer-record comparisons: one catalogue that training turns into Splink settings and
the online customer scorer recognises in a model file.

A customer record is compared on six normalised string attributes. Every level here renders to
the DuckDB SQL Splink runs and evaluates the same way in Python (rapidfuzz's Jaro-Winkler,
Levenshtein and Damerau-Levenshtein equal DuckDB's functions), so a model trained by Splink
scores identically online.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler, Levenshtein

ATTRIBUTE_COLUMNS = ("given_name", "family_name", "date_of_birth", "address", "postcode", "city", "document_id")
# Columns whose exact levels carry a term-frequency adjustment (a common surname says little).
TF_COLUMNS = ("given_name", "family_name", "city")


@dataclass(frozen=True, slots=True)
class CustomerAttributes:
    """A customer record's matching attributes, normalised (`normalise_text`); None = unknown.

    `date_of_birth` is ISO `YYYY-MM-DD` (validated where records come in). `document_id` (an
    identity document's number: passport, national id) is compared only for equality, so the
    service keeps it as a keyed hash (`normalise_document_id`, then hashed)."""

    given_name: str | None = None
    family_name: str | None = None
    date_of_birth: str | None = None
    address: str | None = None
    postcode: str | None = None
    city: str | None = None
    document_id: str | None = None

    def value(self, column: str) -> str | None:
        value: str | None = getattr(self, column)
        return value

    def as_dict(self) -> dict[str, str | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ASCII bytes as `normalise_text` treats them: letters lower-cased, digits kept, anything else
# a space. NFKD leaves ASCII as it is and no ASCII character is a combining mark, so for ASCII
# text one byte translation gives what the general path below gives, about four times faster.
# (A 256-byte table, as `bytes.translate` wants; only its ASCII half is ever used.)
_ASCII_TEXT = bytes((c | 0x20 if chr(c).isalpha() else c) if c < 128 and chr(c).isalnum() else 0x20 for c in range(256))


def normalise_text(value: str | None) -> str | None:
    """Lower case, accents and punctuation gone, whitespace collapsed; empty becomes None."""
    if value is None:
        return None
    if value.isascii():
        return b" ".join(value.encode("ascii").translate(_ASCII_TEXT).split()).decode("ascii") or None
    decomposed = unicodedata.normalize("NFKD", value)
    kept = "".join(ch if ch.isalnum() else " " for ch in decomposed if not unicodedata.combining(ch))
    text = " ".join(kept.lower().split())
    return text or None


def normalise_document_id(value: str | None) -> str | None:
    """A document number as `normalise_text` leaves it, spaces gone too: "AB 12-34" is "ab1234"."""
    text = normalise_text(value)
    return text.replace(" ", "") if text is not None else None


_COLUMN = "(" + "|".join(ATTRIBUTE_COLUMNS) + ")"
_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


@dataclass(frozen=True, slots=True)
class CustomerLevel:
    """One comparison level: its SQL for Splink and the same test on two Python values.

    `kind` is one of: null, exact, jaro_winkler (value = minimum similarity), levenshtein and
    damerau_levenshtein (value = maximum distance), date_swapped (day and month swapped), else.
    """

    kind: str
    column: str = ""
    value: float = 0.0

    def sql(self) -> str:
        c = self.column
        match self.kind:
            case "null":
                return f'"{c}_l" IS NULL OR "{c}_r" IS NULL'
            case "exact":
                return f'"{c}_l" = "{c}_r"'
            case "jaro_winkler":
                return f'jaro_winkler_similarity("{c}_l", "{c}_r") >= {_number(self.value)}'
            case "levenshtein" | "damerau_levenshtein":
                return f'{self.kind}("{c}_l", "{c}_r") <= {int(self.value)}'
            case "date_swapped":
                return (
                    f'substr("{c}_l", 1, 4) = substr("{c}_r", 1, 4) AND '
                    f'substr("{c}_l", 6, 2) = substr("{c}_r", 9, 2) AND '
                    f'substr("{c}_l", 9, 2) = substr("{c}_r", 6, 2)'
                )
            case "else":
                return "ELSE"
        raise ValueError(f"unknown level kind {self.kind!r}")

    def label(self) -> str:
        c = self.column.replace("_", " ")
        match self.kind:
            case "null":
                return f"{c} missing"
            case "exact":
                return f"same {c}"
            case "jaro_winkler":
                return f"{c} Jaro-Winkler >= {_number(self.value)}"
            case "levenshtein" | "damerau_levenshtein":
                return f"{c} within {int(self.value)} edit{'s' if self.value != 1 else ''}"
            case "date_swapped":
                return f"{c} day and month swapped"
        return "all other comparisons"

    def holds(self, left: str | None, right: str | None) -> bool:
        """Whether the SQL condition is TRUE for these two values (NULL compares to nothing)."""
        if self.kind == "else":
            return True
        if self.kind == "null":
            return left is None or right is None
        if left is None or right is None:
            return False
        match self.kind:
            case "exact":
                return left == right
            case "jaro_winkler":
                return bool(JaroWinkler.similarity(left, right) >= self.value)
            case "levenshtein":
                return bool(Levenshtein.distance(left, right) <= self.value)
            case "damerau_levenshtein":
                return bool(DamerauLevenshtein.distance(left, right) <= self.value)
            case "date_swapped":
                return left[0:4] == right[0:4] and left[5:7] == right[8:10] and left[8:10] == right[5:7]
        raise ValueError(f"unknown level kind {self.kind!r}")

    @classmethod
    def parse(cls, sql: object) -> CustomerLevel | None:
        """The catalogue level whose SQL is exactly `sql`, else None."""
        if not isinstance(sql, str):
            return None
        if sql == "ELSE":
            return cls("else")
        patterns = (
            ("null", rf'"{_COLUMN}_l" IS NULL OR "\1_r" IS NULL', None),
            ("exact", rf'"{_COLUMN}_l" = "\1_r"', None),
            ("jaro_winkler", rf'jaro_winkler_similarity\("{_COLUMN}_l", "\1_r"\) >= {_NUMBER}', float),
            ("levenshtein", rf'levenshtein\("{_COLUMN}_l", "\1_r"\) <= ([0-9]+)', int),
            ("damerau_levenshtein", rf'damerau_levenshtein\("{_COLUMN}_l", "\1_r"\) <= ([0-9]+)', int),
            ("date_swapped", rf'substr\("{_COLUMN}_l", 1, 4\) = .*', None),
        )
        for kind, pattern, convert in patterns:
            match = re.fullmatch(pattern, sql)
            if match is None:
                continue
            value = convert(match.group(2)) if convert is not None else 0.0
            level = cls(kind, match.group(1), float(value))
            return level if level.sql() == sql else None
        return None

    @property
    def is_else(self) -> bool:
        return self.kind == "else"

    def exact_match_column(self) -> str | None:
        return self.column if self.kind == "exact" else None


def _number(value: float) -> str:
    return format(value, "g")


@dataclass(frozen=True, slots=True)
class CustomerComparison:
    name: str
    levels: tuple[CustomerLevel, ...]
    tf_column: str | None = None  # adjusts the exact level on this column

    def settings(self) -> dict[str, Any]:
        """The Splink comparison dict (before training)."""
        levels: list[dict[str, Any]] = []
        for level in self.levels:
            out: dict[str, Any] = {"sql_condition": level.sql(), "label_for_charts": level.label()}
            if level.kind == "null":
                out["is_null_level"] = True
            if self.tf_column is not None and level.exact_match_column() == self.tf_column:
                out["tf_adjustment_column"] = self.tf_column
                out["tf_adjustment_weight"] = 1.0
            levels.append(out)
        return {"output_column_name": self.name, "comparison_description": self.name, "comparison_levels": levels}


def _levels(column: str, *middle: CustomerLevel) -> tuple[CustomerLevel, ...]:
    return (CustomerLevel("null", column), CustomerLevel("exact", column), *middle, CustomerLevel("else"))


def _name(column: str) -> CustomerComparison:
    return CustomerComparison(
        column,
        _levels(column, CustomerLevel("jaro_winkler", column, 0.92), CustomerLevel("jaro_winkler", column, 0.8)),
        tf_column=column,
    )


CUSTOMER_COMPARISONS: tuple[CustomerComparison, ...] = (
    _name("given_name"),
    _name("family_name"),
    CustomerComparison(
        "date_of_birth",
        _levels(
            "date_of_birth",
            CustomerLevel("date_swapped", "date_of_birth"),
            CustomerLevel("damerau_levenshtein", "date_of_birth", 1),
        ),
    ),
    CustomerComparison(
        "address",
        _levels(
            "address", CustomerLevel("jaro_winkler", "address", 0.9), CustomerLevel("jaro_winkler", "address", 0.7)
        ),
    ),
    CustomerComparison("postcode", _levels("postcode", CustomerLevel("levenshtein", "postcode", 1))),
    CustomerComparison(
        "city",
        _levels("city", CustomerLevel("jaro_winkler", "city", 0.9)),
        tf_column="city",
    ),
    CustomerComparison("document_id", _levels("document_id")),
)

# Candidate search, online and in training's prediction: records that agree exactly on all the
# columns of any one rule are compared.
CUSTOMER_BLOCKING: tuple[tuple[str, ...], ...] = (
    ("date_of_birth",),
    ("given_name", "family_name"),
    ("postcode", "family_name"),
    ("postcode", "given_name"),
    ("address",),
    ("postcode", "city"),
    ("given_name", "city"),
    ("family_name", "city"),
    ("document_id",),
)


def blocking_rule_sql(columns: Sequence[str]) -> str:
    return " AND ".join(f"l.{c} = r.{c}" for c in columns)


def customer_settings(comparisons: Sequence[CustomerComparison] = CUSTOMER_COMPARISONS) -> dict[str, Any]:
    """The Splink settings dict of the customer model, before training.

    Records carry `unique_id` and `source_system`; `link_and_dedupe` with this column would
    also compare within a system, which the service never links, so `dedupe_only` is used and
    same-system pairs are left out by the blocking rules' extra condition."""
    same_system = "l.source_system <> r.source_system"
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": 0.0001,
        "comparisons": [c.settings() for c in comparisons],
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": f"{blocking_rule_sql(rule)} AND {same_system}", "sql_dialect": "duckdb"}
            for rule in CUSTOMER_BLOCKING
        ],
        "retain_intermediate_calculation_columns": True,
    }
