"""The batch's HTML summary: one static page, no scripts, no network, the *redacted* thumbnails inline.

Everything is in the one file (inline CSS, thumbnails as data: URIs) so it can be mailed or
archived with the outputs and opens offline. Thumbnails are made from the outputs only: the page
must never show a face the redaction hid. Every name is HTML-escaped.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from .._types import FileReport
from ..report import LOW_SCORE
from ..media.kinds import VIDEO_SUFFIXES

THUMB_PX = 160  # the longer side; a JPEG this size is ~5 KB, so 10,000 files make a ~50 MB page

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}
.summary{margin:0 0 1em;color:#444}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.4em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0}
td.thumb{width:170px}
td.thumb img{max-width:160px;max-height:160px;display:block}
tr.failed{background:#fff0f0}
.err{color:#a00}
.leak{color:#a00;font-weight:bold}
.clean{color:#070}
.num{text-align:right}
"""


def thumbnail_uri(output: Path) -> str | None:
    """A small JPEG of the redacted output (a video's first frame) as a data: URI, or None."""
    with contextlib.suppress(Exception):  # a thumbnail is a convenience: never fail the report
        if output.suffix.lower() in VIDEO_SUFFIXES:
            import av

            with av.open(str(output)) as container:
                frame = next(container.decode(video=0))
                image = frame.to_image()
        else:
            from ..media import image as _register_heif  # noqa: F401 - opens HEIC outputs too

            with Image.open(output) as opened:
                opened.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))  # JPEG: decode at a reduced size
                image = opened.convert("RGB")
        image.thumbnail((THUMB_PX, THUMB_PX))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=70)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return None


def _audit_cell(report: FileReport) -> str:
    if report.audit is None:
        return "<td>not audited</td>"
    if "error" in report.audit:
        return f'<td class="err">audit not done: {html.escape(str(report.audit["error"]))}</td>'
    if report.audit.get("clean", False):
        return '<td class="clean">clean</td>'
    return '<td class="leak">found something: review</td>'


def _row(report: FileReport) -> str:
    name = html.escape(str(report.path))
    if not report.ok:
        return (f'<tr class="failed"><td class="thumb"></td><td>{name}</td><td colspan="5" '
                f'class="err">failed: {html.escape(report.error or "unknown error")}</td>'
                f"{_audit_cell(report)}</tr>")
    uri = thumbnail_uri(report.output) if report.output is not None else None
    thumb = f'<img alt="redacted thumbnail" src="{uri}">' if uri else "no thumbnail"
    output = html.escape(str(report.output))
    lowest = "" if report.lowest_score is None else f"{report.lowest_score:.2f}"
    tracked = f"{report.tracked_frames} of {report.frames}" if report.kind == "video" else ""
    low = f"{report.low_score_frames} of {report.frames}" if report.frames else ""
    return (f'<tr class="done"><td class="thumb">{thumb}</td><td>{name}<br><small>&rarr; {output}'
            f'</small></td><td class="num faces">{report.faces}</td><td class="num">{lowest}</td>'
            f'<td class="num low">{low}</td>'
            f'<td class="num">{tracked}</td><td class="num">{report.seconds:.1f} s</td>'
            f"{_audit_cell(report)}</tr>")


def render(reports: Sequence[FileReport], title: str = "veil batch report") -> str:
    done = sum(r.ok for r in reports)
    faces = sum(r.faces for r in reports if r.ok)
    rows = "\n".join(_row(r) for r in reports)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="summary">{done} of {len(reports)} files redacted, {len(reports) - done} failed, {faces} faces masked.</p>
<table><thead><tr><th>redacted</th><th>file</th><th>faces</th><th>lowest score</th>
<th>frames with low-confidence masks (score &lt; {LOW_SCORE})</th><th>frames with tracked masks</th><th>time</th><th>audit</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


def html_path(json_path: Path) -> Path:
    """The page beside the JSON report: report.json -> report.html."""
    page = json_path.with_suffix(".html")
    return page if page != json_path else json_path.with_name(json_path.name + ".html")


def write_html(path: Path, reports: Sequence[FileReport]) -> None:
    path.write_text(render(reports), encoding="utf-8")


__all__ = ["render", "write_html", "html_path", "thumbnail_uri", "THUMB_PX"]
