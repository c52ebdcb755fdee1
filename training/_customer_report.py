"""The customer-model training report: Splink's charts beside the metrics, as offline HTML.

Customer attributes are personal data, so the report shows weights only: waterfalls are drawn
with Splink's `remove_sensitive_data`, and no chart lists attribute values.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from splink import Linker

from ._report_html import page, save_charts, threshold_table


def write_customer_report(out: Path, linker: Linker, metrics: dict[str, Any]) -> Path:
    charts = save_charts(
        out, linker, linker, "Waterfalls of a few predicted pairs (weights only)", remove_sensitive_data=True
    )
    version = str(metrics["model_version"])
    (out / "index.html").write_text(page(f"idstitch customer model {version}", _body(metrics), charts))
    return out


def _body(metrics: dict[str, Any]) -> str:
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
    return f"""<h1>Customer model {version}</h1>
<p>Trained {metrics["trained_at"]} in {metrics["training_seconds"]} s on {metrics["records"]:,} records ({systems}).
Soft links at match probability ≥ {metrics["threshold"]}: {metrics["pairs_at_threshold"]:,} predicted pairs.</p>
{scored}"""
