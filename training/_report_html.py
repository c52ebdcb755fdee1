"""What both training reports are made of: Splink's own charts saved as offline HTML, the list
that links them, the page around them and the precision-recall table by threshold."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from splink import Linker


@dataclass(frozen=True, slots=True)
class Chart:
    file: str
    title: str


def save_charts(
    out: Path, trained: Linker, scored: Linker, waterfall_title: str, *, remove_sensitive_data: bool = False
) -> list[Chart]:
    """Match weights and m/u of the `trained` model, and waterfalls of a few pairs `scored`
    predicts at probability ≥ 0.5 (none if it predicts none): the charts saved, in order."""
    out.mkdir(parents=True, exist_ok=True)
    charts = [
        Chart("match-weights.html", "Match weights of each comparison level"),
        Chart("m-u-parameters.html", "m and u probabilities"),
    ]
    trained.visualisations.match_weights_chart().save_offline_chart(
        str(out / charts[0].file), overwrite=True, print_msg=False
    )
    trained.visualisations.m_u_parameters_chart().save_offline_chart(
        str(out / charts[1].file), overwrite=True, print_msg=False
    )
    pairs = scored.inference.predict(threshold_match_probability=0.5).as_record_list(limit=8)
    if pairs:
        waterfalls = Chart("waterfalls.html", waterfall_title)
        chart = scored.visualisations.waterfall_chart(
            pairs, filter_nulls=False, remove_sensitive_data=remove_sensitive_data
        )
        chart.save_offline_chart(str(out / waterfalls.file), overwrite=True, print_msg=False)
        charts.append(waterfalls)
    return charts


def page(title: str, body: str, charts: list[Chart]) -> str:
    """A whole report page: `body` (HTML), then the list of `charts`."""
    links = "".join(f'<li><a href="{c.file}">{html.escape(c.title)}</a></li>' for c in charts)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:right}}</style></head>
<body>
{body}
<h2>Splink charts</h2><ul>{links}</ul>
</body></html>
"""


def threshold_table(evaluation: dict[str, Any]) -> str:
    """An evaluation's `by_threshold` rows as an HTML table."""
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
