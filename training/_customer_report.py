"""The customer-model training report: Splink's charts beside the metrics, as offline HTML.

Customer attributes are personal data, so the report shows weights only: waterfalls are drawn
with Splink's `remove_sensitive_data`, and no chart lists attribute values.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from splink import Linker

from ._report import threshold_table

_CHARTS = (
    ("match-weights.html", "Match weights of each comparison level"),
    ("m-u-parameters.html", "m and u probabilities"),
    ("waterfalls.html", "Waterfalls of a few predicted pairs (weights only)"),
)


def write_customer_report(out: Path, linker: Linker, metrics: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    linker.visualisations.match_weights_chart().save_offline_chart(
        str(out / _CHARTS[0][0]), overwrite=True, print_msg=False
    )
    linker.visualisations.m_u_parameters_chart().save_offline_chart(
        str(out / _CHARTS[1][0]), overwrite=True, print_msg=False
    )
    pairs = linker.inference.predict(threshold_match_probability=0.5).as_record_list(limit=8)
    if pairs:
        linker.visualisations.waterfall_chart(pairs, filter_nulls=False, remove_sensitive_data=True).save_offline_chart(
            str(out / _CHARTS[2][0]), overwrite=True, print_msg=False
        )
    (out / "index.html").write_text(_index(metrics, include_waterfalls=bool(pairs)))
    return out


def _index(metrics: dict[str, Any], include_waterfalls: bool) -> str:
    version = html.escape(str(metrics["model_version"]))
    systems = ", ".join(f"{html.escape(s)} {n:,}" for s, n in metrics["systems"].items())
    evaluation = metrics.get("evaluation")
    if evaluation is None:
        scored = "<p>The records had no <code>true_id</code> column, so precision and recall are unknown.</p>"
    else:
        at = evaluation["at_threshold"]
        scored = f"""<p><b>At match probability ≥ {at["threshold"]}</b>: precision {at["precision"]:.4f},
recall {at["recall"]:.4f}, F1 {at["f1"]:.4f} against <code>true_id</code>
({evaluation["positives"]:,} true cross-system pairs; labels not used in training).</p>
<h2>Precision and recall by threshold</h2>
{threshold_table(evaluation)}"""
    links = "".join(
        f'<li><a href="{name}">{html.escape(title)}</a></li>'
        for name, title in _CHARTS
        if include_waterfalls or name != "waterfalls.html"
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>idstitch customer model {version}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}</style></head>
<body>
<h1>Customer model {version}</h1>
<p>Trained {metrics["trained_at"]} in {metrics["training_seconds"]} s on {metrics["records"]:,} records ({systems}).
Soft links at match probability ≥ {metrics["threshold"]}: {metrics["pairs_at_threshold"]:,} predicted pairs.</p>
{scored}
<h2>Splink charts</h2><ul>{links}</ul>
</body></html>
"""
