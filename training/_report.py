"""The training report: Splink's own charts beside the held-out metrics, as offline HTML."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from splink import Linker

_CHARTS = (
    ("match-weights.html", "Match weights of each comparison level"),
    ("m-u-parameters.html", "m and u probabilities"),
    ("waterfalls.html", "Waterfalls of a few held-out pairs"),
)


def write_report(out: Path, trained: Linker, held_out: Linker, metrics: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    trained.visualisations.match_weights_chart().save_offline_chart(
        str(out / _CHARTS[0][0]), overwrite=True, print_msg=False
    )
    trained.visualisations.m_u_parameters_chart().save_offline_chart(
        str(out / _CHARTS[1][0]), overwrite=True, print_msg=False
    )
    pairs = held_out.inference.predict(threshold_match_probability=0.5).as_record_list(limit=8)
    if pairs:
        held_out.visualisations.waterfall_chart(pairs, filter_nulls=False).save_offline_chart(
            str(out / _CHARTS[2][0]), overwrite=True, print_msg=False
        )
    (out / "index.html").write_text(_index(metrics, include_waterfalls=bool(pairs)))
    return out


def _index(metrics: dict[str, Any], include_waterfalls: bool) -> str:
    evaluation = metrics["evaluation"]
    links = "".join(
        f'<li><a href="{name}">{html.escape(title)}</a></li>'
        for name, title in _CHARTS
        if include_waterfalls or name != "waterfalls.html"
    )
    chosen = evaluation["chosen"]
    pairwise = metrics.get("pairwise_evaluation")
    pairwise_section = (
        f"""<h2>Pairs among the held-out devices alone (Splink predict)</h2>
<p>{pairwise["positives"]:,} true pairs, {pairwise["scored_pairs"]:,} pairs scored after blocking; flattering, since
a held-out device meets none of the household members and neighbours it must be told from online.</p>
{threshold_table(pairwise)}"""
        if pairwise
        else ""
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>idstitch visitor model {metrics["model_version"]}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}</style></head>
<body>
<h1>Visitor model {metrics["model_version"]}</h1>
<p>Trained {metrics["trained_at"]} on {metrics["train_profiles"]:,} device profiles;
evaluated on {metrics["held_out_profiles"]:,} devices of {metrics["held_out_logins"]:,} held-out logins, each linked
as the service links an anonymous visitor: against all {metrics["profiles"]:,} profiles, to its best candidate person
({evaluation["positives"]:,} held-out devices have another device of their login to find;
{evaluation["scored_pairs"]:,} pairs scored after blocking; links to unlabelled devices are not counted).</p>
<p><b>Chosen threshold: probability ≥ {chosen["threshold"]}</b> — precision {chosen["precision"]:.4f},
recall {chosen["recall"]:.4f}, F1 {chosen["f1"]:.4f} (best F1 with precision ≥ {evaluation["min_precision"]}
over at least 20 right links, else the most precise threshold with 20).</p>
<h2>Links by threshold (held-out devices)</h2>
{threshold_table(evaluation)}
{pairwise_section}
<h2>Splink charts</h2><ul>{links}</ul>
</body></html>
"""


def threshold_table(evaluation: dict[str, Any]) -> str:
    """An evaluation's `by_threshold` rows as an HTML table (the customer report uses it too)."""
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{v}</td>"
            for v in (
                row["threshold"],
                f"{row['precision']:.4f}",
                f"{row['recall']:.4f}",
                f"{row['f1']:.4f}",
                row["true_positives"],
                row["false_positives"],
            )
        )
        + "</tr>"
        for row in evaluation["by_threshold"]
    )
    head = "".join(f"<th>{name}</th>" for name in ("threshold", "precision", "recall", "F1", "TP", "FP"))
    return f"<table><tr>{head}</tr>{rows}</table>"
