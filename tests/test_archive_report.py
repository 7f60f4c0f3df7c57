"""The batch's HTML page in real Chromium: every file listed, thumbnails of the *redacted* outputs
inline, errors shown, names escaped, nothing fetched from anywhere."""

from __future__ import annotations

import base64
import io
import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import EXAMPLE
from helpers import run_cli
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, _need_chromium

from veil.archive.html_report import THUMB_PX, html_path


def _thumb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMB_PX, THUMB_PX))
        return np.asarray(image, dtype=np.float32)


def test_html_path_sits_beside_the_json() -> None:
    assert html_path(Path("out/report.json")) == Path("out/report.html")
    assert html_path(Path("out/report.html")) == Path("out/report.html.html")


@pytest.mark.slow
def test_html_report_in_chromium(tmp_path: Path, make_clips_module) -> None:  # type: ignore[no-untyped-def]
    _need_chromium()
    from playwright.sync_api import sync_playwright

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    shutil.copyfile(EXAMPLE, src / "astronaut.jpg")
    odd = src / "<script>alert(1)<\\script>.jpg"  # a name that is markup
    shutil.copyfile(EXAMPLE, odd)
    (src / "broken.jpg").write_bytes(b"not a photo")
    [entry] = make_clips_module.make_clips(str(tmp_path / "render"), count=1, seconds=0.5,
                                           fps=Fraction(10), size=(320, 180))
    shutil.copyfile(tmp_path / "render" / Path(entry["video"]).name, src / "clip.mp4")
    report = tmp_path / "report.json"
    result = run_cli("redact", src, "-o", out, "--report", report)
    assert result.exit_code == 1, result.stderr  # broken.jpg
    page_file = tmp_path / "report.html"
    assert page_file.is_file() and json.loads(report.read_text())["files"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            fetched: list[str] = []
            page.on("request", lambda r: fetched.append(r.url))
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            assert page.locator("script").count() == 0
            rows = page.locator("tbody tr")
            assert rows.count() == 4
            texts = [rows.nth(i).inner_text() for i in range(4)]
            assert any(str(odd) in text for text in texts), "the markup name must show as text"
            [failed] = [t for t in texts if "broken.jpg" in t]
            [clip_row] = [i for i, t in enumerate(texts) if "clip.mp4" in t]
            low_cell = rows.nth(clip_row).locator("td.low").inner_text()
            assert "failed:" in failed
            images = page.locator("tbody img")
            assert images.count() == 3
            assert all(images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0")
                       for i in range(3))
            sources = {rows.nth(i).inner_text().split("\n")[0]: rows.nth(i).locator("img")
                       for i in range(4) if rows.nth(i).locator("img").count()}
            uri = next(img.get_attribute("src") for name, img in sources.items()
                       if name.endswith("astronaut.jpg"))
        finally:
            browser.close()
    assert all(url.startswith(("file://", "data:")) for url in fetched), fetched
    [clip] = [f for f in json.loads(report.read_text())["files"] if f["path"].endswith("clip.mp4")]
    assert low_cell == f"{clip['frames_with_low_confidence_masks']} of {clip['frames']}"
    assert uri is not None and uri.startswith("data:image/jpeg;base64,")
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"),
                       dtype=np.float32)
    redacted, original = _thumb(out / "astronaut.jpg"), _thumb(src / "astronaut.jpg")
    assert shown.shape == redacted.shape
    # Where the redaction changed the picture (the masked face), the page shows the output's pixels.
    masked = np.abs(redacted - original).max(axis=2) > 60
    assert masked.sum() > 100, "the test photo's face was not masked"
    assert np.abs(shown - redacted)[masked].mean() * 4 < np.abs(shown - original)[masked].mean()
