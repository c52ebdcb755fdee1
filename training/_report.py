"""The visitor-model training report: Splink's own charts beside the held-out metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from splink import Linker

from ._report_html import page, save_charts, threshold_table


def write_report(out: Path, trained: Linker, held_out: Linker, metrics: dict[str, Any]) -> Path:
    charts = save_charts(out, trained, held_out, "Waterfalls of a few held-out pairs")
    (out / "index.html").write_text(page(f"idstitch visitor model {metrics['model_version']}", _body(metrics), charts))
    return out


def _body(metrics: dict[str, Any]) -> str:
    evaluation = metrics["evaluation"]
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
    return f"""<h1>Visitor model {metrics["model_version"]}</h1>
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
{pairwise_section}"""
