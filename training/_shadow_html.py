"""The shadow report as one self-contained HTML page: tables and inline SVG charts, no scripts."""

from __future__ import annotations

from html import escape
from typing import Any

from ._shadow import ShadowReport

_CURRENT, _CANDIDATE = "#7f8c8d", "#2e86de"
_ROW = 18  # pixels per bar row


def render(report: ShadowReport) -> str:
    now, then = report.held_out["current"], report.held_out["candidate"]
    rows = [
        ("links", f"{report.links[0]:,}", f"{report.links[1]:,}"),
        ("threshold", f"{report.thresholds[0]:g}", f"{report.thresholds[1]:g}"),
        ("held-out precision at its threshold", f"{now['at_threshold']['precision']:.3f}",
         f"{then['at_threshold']['precision']:.3f}"),
        ("held-out recall at its threshold", f"{now['at_threshold']['recall']:.3f}",
         f"{then['at_threshold']['recall']:.3f}"),
    ]  # fmt: skip
    summary = "".join(f"<tr><td>{escape(a)}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Shadow: {escape(report.candidate)} beside {escape(report.current)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 60em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.25em 0.75em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.key span {{ display: inline-block; width: 1em; height: 1em; vertical-align: middle; margin: 0 0.3em 0 1em; }}
</style></head><body>
<h1>Shadow of model {escape(report.candidate)}</h1>
<p>Beside the model in force, {escape(report.current)}, on {report.devices:,} anonymous devices of the
same history. Nothing was changed. {report.made:,} links would be made, {report.dropped:,} dropped and
{report.moved:,} moved to another person; {report.persons_gaining:,} persons would gain devices and
{report.persons_losing:,} would lose some.</p>
<p class="key"><span style="background:{_CURRENT}"></span>in force ({escape(report.current)})
<span style="background:{_CANDIDATE}"></span>candidate ({escape(report.candidate)})</p>
<table><tr><th></th><th>in force</th><th>candidate</th></tr>{summary}</table>
<h2>Links that would change, by probability band</h2>
{_band_chart(report)}
<h2>Held-out precision and recall by threshold</h2>
{_held_out_table(now, then)}
<h2>Match weights side by side</h2>
<p>log2(m/u) of every level (the prior and term-frequency adjustments aside).</p>
{_weight_chart(report.weights)}
</body></html>
"""


def _band_chart(report: ShadowReport) -> str:
    bands = list(report.made_by_band)
    series = [("made (candidate's probability)", report.made_by_band, _CANDIDATE),
              ("dropped (in-force model's probability)", report.dropped_by_band, _CURRENT)]  # fmt: skip
    top = max([1, *report.made_by_band.values(), *report.dropped_by_band.values()])
    width, label_width = 420, 260
    parts, y = [], 0
    for band in bands:
        for name, counts, colour in series:
            n = counts.get(band, 0)
            parts.append(
                f'<text x="0" y="{y + 13}" font-size="12">{escape(band)}: {escape(name)}</text>'
                f'<rect x="{label_width}" y="{y + 2}" width="{n / top * width:.1f}" height="{_ROW - 4}" '
                f'fill="{colour}"/><text x="{label_width + n / top * width + 4:.1f}" y="{y + 13}" '
                f'font-size="12">{n:,}</text>'
            )
            y += _ROW
        y += 6
    return f'<svg width="{label_width + width + 60}" height="{y}" role="img">{"".join(parts)}</svg>'


def _weight_chart(weights: list[dict[str, Any]]) -> str:
    values = [abs(w[k]) for w in weights for k in ("current", "candidate") if w[k] is not None]
    scale = 200 / max([1.0, *values])
    zero = 330 + 210  # labels, then the negative half
    parts, y = [], 0
    for w in weights:
        label = f"{w['comparison']}: {w['level']}"
        parts.append(f'<text x="0" y="{y + 2 * _ROW - 5}" font-size="12">{escape(label[:52])}</text>')
        for key, colour in (("current", _CURRENT), ("candidate", _CANDIDATE)):
            value = w[key]
            if value is not None:
                x, length = (zero, value * scale) if value >= 0 else (zero + value * scale, -value * scale)
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 2}" width="{length:.1f}" height="{_ROW - 4}" fill="{colour}"/>'
                    f'<text x="{zero + 215}" y="{y + 13}" font-size="11">{value:+.2f}</text>'
                )
            y += _ROW
        y += 4
    axis = f'<line x1="{zero}" y1="0" x2="{zero}" y2="{y}" stroke="#333"/>'
    return f'<svg width="{zero + 270}" height="{y}" role="img">{axis}{"".join(parts)}</svg>'


def _held_out_table(now: dict[str, Any], then: dict[str, Any]) -> str:
    rows = []
    for a, b in zip(now["by_threshold"], then["by_threshold"], strict=True):
        rows.append(
            f"<tr><td>{a['threshold']:g}</td><td>{a['precision']:.3f}</td><td>{a['recall']:.3f}</td>"
            f"<td>{b['precision']:.3f}</td><td>{b['recall']:.3f}</td></tr>"
        )
    return (
        "<table><tr><th>threshold</th><th>in force: precision</th><th>recall</th><th>candidate: precision</th>"
        f"<th>recall</th></tr>{''.join(rows)}</table>"
    )
