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
    links = "".join(
        f'<li><a href="{name}">{html.escape(title)}</a></li>'
        for name, title in _CHARTS
        if include_waterfalls or name != "waterfalls.html"
    )
    chosen = evaluation["chosen"]
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>idstitch visitor model {metrics["model_version"]}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}</style></head>
<body>
<h1>Visitor model {metrics["model_version"]}</h1>
<p>Trained {metrics["trained_at"]} on {metrics["train_profiles"]:,} device profiles;
evaluated on {metrics["held_out_profiles"]:,} devices of {metrics["held_out_logins"]:,} held-out logins
({evaluation["positives"]:,} true pairs, {evaluation["scored_pairs"]:,} pairs scored after blocking).</p>
<p><b>Chosen threshold: match probability ≥ {chosen["threshold"]}</b> — precision {chosen["precision"]:.4f},
recall {chosen["recall"]:.4f}, F1 {chosen["f1"]:.4f} (best F1 with precision ≥ {evaluation["min_precision"]}).</p>
<h2>Precision and recall by threshold (held-out pairs)</h2>
<table><tr><th>threshold</th><th>precision</th><th>recall</th><th>F1</th><th>TP</th><th>FP</th></tr>{rows}</table>
<h2>Splink charts</h2><ul>{links}</ul>
</body></html>
"""
