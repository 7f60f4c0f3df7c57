"""`veil review` end to end in real Chromium: see the boxes, remove one, add one, export, check pixels."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_face_shows, boxes_overlap, most_exposed
from PIL import Image

from veil.media.image import read_image

pytestmark = pytest.mark.slow  # a real browser against a `veil review` process

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"  # gitignored: the screenshot shows WIDER pixels
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-default-apps", "--metrics-recording-only", "--no-default-browser-check"]


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"Debian chromium not found at {CHROMIUM} (make system-deps installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture()
def photo(tmp_path: Path, wider_dir: Path, wider_gt) -> Path:  # type: ignore[no-untyped-def]
    """A temporary copy of a WIDER photo with a few clearly visible faces."""
    truth = next(t for t in wider_gt if 3 <= len(t.boxes) <= 8 and t.boxes[:, 2].min() >= 30)
    folder = tmp_path / "story"
    folder.mkdir()
    target = folder / "photo.jpg"
    shutil.copyfile(wider_dir / truth.image, target)
    return target


@pytest.fixture()
def review_url(photo: Path) -> Iterator[str]:
    """Run the real `veil review` command on the photo's folder; yield the address it prints."""
    yield from _review(photo.parent)


def _review(folder: Path) -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "veil", "review", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env=dict(os.environ, NO_COLOR="1"))
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        output = ""
        while True:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                pytest.fail(f"veil review printed no address: {output}")
            output += line
            found = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)
            if found:
                break
        yield found.group(0)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_review_remove_add_export(review_url: str, photo: Path, tmp_path: Path) -> None:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    decoded = read_image(photo).pixels
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            outside: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(review_url.split("/?")[0])
                    else outside.append(r.url))
            page.goto(review_url)
            assert "token=" not in page.url  # the key moved into an HttpOnly cookie
            page.wait_for_selector("#overlay rect", timeout=60_000)

            rects = page.locator("#overlay rect")
            boxes = [[int(float(rects.nth(i).get_attribute(k) or 0)) for k in ("x", "y", "width", "height")]
                     for i in range(rects.count())]
            assert len(boxes) >= 2, "veil should find several faces in this photo"
            assert all(rects.nth(i).get_attribute("data-action") == "mask" for i in range(len(boxes)))

            # Remove the face with most pixels no other box covers: those must come through.
            removed = most_exposed(decoded.shape, boxes)
            if any(boxes_overlap(boxes[removed], o) for j, o in enumerate(boxes) if j != removed):
                rects.nth(removed).dispatch_event("click")  # its centre may lie under another box
            else:
                rects.nth(removed).click()
            page.click("#act-remove")
            assert rects.nth(removed).get_attribute("data-action") == "remove"

            # Drag a new box over a bright patch away from every face.
            added = next([x, y, 40, 40] for y in range(0, decoded.shape[0] - 40, 20)
                         for x in range(0, decoded.shape[1] - 40, 20)
                         if decoded[y:y + 40, x:x + 40].mean() > 60
                         and not any(boxes_overlap([x - 6, y - 6, 52, 52], b) for b in boxes))
            img = page.locator("#picture").bounding_box()
            assert img is not None
            scale = img["width"] / decoded.shape[1]
            x0, y0 = img["x"] + (added[0] + 1) * scale, img["y"] + (added[1] + 1) * scale
            x1, y1 = img["x"] + (added[0] + 39) * scale, img["y"] + (added[1] + 39) * scale
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2)
            page.mouse.move(x1, y1)
            page.mouse.up()
            new = page.locator("#overlay rect.added")
            assert new.count() == 1
            drawn = [int(float(new.get_attribute(k) or 0)) for k in ("x", "y", "width", "height")]
            assert abs(drawn[0] - added[0]) <= 3 and abs(drawn[2] - 40) <= 5

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "review-page.png"))

            page.click("#export")
            page.wait_for_selector("#export-done", timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "review-exported.png"))
            audit_text = page.locator("#result .audit").inner_text()
            if importlib.util.find_spec("veil.audit") is not None:
                # The removed box was a real face: the audit must say something survives.
                assert audit_text.startswith("Audit: ") and "clean" not in audit_text.split("\n")[0]
            assert outside == [], f"the page fetched something from elsewhere: {outside}"
        finally:
            browser.close()

    out = photo.with_name("photo.redacted.jpg")
    assert out.is_file()
    result = np.asarray(Image.open(out).convert("RGB")).astype(np.int16)
    # A fresh JPEG at quality 95: compare with a tolerance, looking inside each box.
    assert_one_face_shows(decoded, result, boxes, removed, inset=3, brighter_than=15)
    x, y, w, h = drawn
    assert result[y + 3:y + h - 3, x + 3:x + w - 3].mean() < 4, "the added box is not masked"
    assert decoded[y + 3:y + h - 3, x + 3:x + w - 3].mean() > 40


@pytest.fixture()
def clip(tmp_path: Path, make_clips_module) -> Path:  # type: ignore[no-untyped-def]
    """A short rendered H.264 clip of a WIDER crowd (temporary, never committed)."""
    from fractions import Fraction

    render = tmp_path / "render"
    [entry] = make_clips_module.make_clips(str(render), count=1, seconds=0.6, fps=Fraction(10),
                                           size=(480, 270))
    folder = tmp_path / "footage"
    folder.mkdir()
    target = folder / "clip.mp4"
    shutil.move(str(render / Path(entry["video"]).name), target)
    return target


def _decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_review_video_keep_track_add_interpolated_export(clip: Path) -> None:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with contextlib.ExitStack() as stack:
        url = next(stack.enter_context(contextlib.closing(_review(clip.parent))))
        p = stack.enter_context(sync_playwright())
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#overlay rect", timeout=120_000)
        assert page.locator("#video-controls").is_visible()
        assert page.locator("#timeline rect.seg-mask").count() >= 1
        regions = page.evaluate("state.videos[0].regions")
        frames = len(regions)
        assert frames == 6

        # Keep visible one person whose boxes never touch another's, in any frame.
        def apart(track: int) -> bool:
            for row in regions:
                mine = [r[:4] for r in row if r[4] == track]
                others = [r[:4] for r in row if r[4] != track]
                if any(boxes_overlap(m, o) for m in mine for o in others):
                    return False
            return True

        tracks = sorted({r[4] for row in regions for r in row if r[4] >= 0})
        def length(track: int) -> int:
            return sum(any(r[4] == track for r in row) for row in regions)

        separate = [t for t in tracks if apart(t)]
        kept = max(separate or tracks, key=length)
        first = next(f for f, row in enumerate(regions) if any(r[4] == kept for r in row))
        page.fill("#scrubber", str(first))
        page.dispatch_event("#scrubber", "input")
        page.locator(f'#overlay rect[data-track="{kept}"]').first.dispatch_event("click")
        page.click("#act-keep")
        assert page.locator(f'#overlay rect[data-track="{kept}"]').first.get_attribute("data-action") == "keep"
        assert page.locator("#timeline rect.seg-keep").count() >= 1

        # Add a box at frame 0, then a second key frame at the last frame further right:
        # the box must move between them.
        img = page.locator("#picture").bounding_box()
        assert img is not None
        scale = img["width"] / 480

        def drag(x: float, y: float, w: float, h: float) -> None:
            page.mouse.move(img["x"] + x * scale, img["y"] + y * scale)
            page.mouse.down()
            page.mouse.move(img["x"] + (x + w / 2) * scale, img["y"] + (y + h / 2) * scale)
            page.mouse.move(img["x"] + (x + w) * scale, img["y"] + (y + h) * scale)
            page.mouse.up()

        page.fill("#scrubber", "0")
        page.dispatch_event("#scrubber", "input")
        page.keyboard.press("Escape")
        drag(10, 10, 40, 40)
        assert page.locator("#overlay rect.added").count() == 1
        page.fill("#scrubber", str(frames - 1))
        page.dispatch_event("#scrubber", "input")
        assert page.locator("#frame-label").inner_text().startswith(f"frame {frames - 1} ")
        drag(70, 10, 40, 40)
        added = page.evaluate("state.videos[0].added")
        assert len(added) == 1 and [k["frame"] for k in added[0]["keys"]] == [0, frames - 1]
        page.click("#prev-frame")
        assert page.locator("#overlay rect.added").count() == 1

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review-video.png"))
        page.click("#export")
        page.wait_for_selector("#export-done", timeout=300_000)
        page.screenshot(path=str(ARTIFACTS / "review-video-exported.png"))
        keys = added[0]["keys"]

    out = clip.with_name("clip.redacted.mp4")
    original, result = _decode(clip), _decode(out)
    assert len(result) == len(original) == frames
    checked_kept = 0
    for f in range(frames):
        before, after = original[f].astype(np.int16), result[f].astype(np.int16)
        t = f / (frames - 1)
        added_x = round(keys[0]["box"][0] + (keys[1]["box"][0] - keys[0]["box"][0]) * t)
        # Pixels some other mask covers (other faces, the added box) are masked whatever the plan.
        covered = np.zeros(before.shape[:2], bool)
        covered[9:52, added_x - 1:added_x + 42] = True
        masked = [r for r in regions[f] if r[4] != kept]
        for x, y, w, h in (r[:4] for r in masked):
            covered[y:y + h, x:x + w] = True
        for x, y, w, h in (r[:4] for r in regions[f] if r[4] == kept):
            visible = ~covered[y:y + h, x:x + w]
            if visible.sum() < 20:
                continue
            inside = np.abs(after[y:y + h, x:x + w] - before[y:y + h, x:x + w])[visible]
            assert inside.mean() < 6, f"kept person altered in frame {f}"
            checked_kept += 1
        for x, y, w, h in (r[:4] for r in masked if r[2] > 8 and r[3] > 8):
            assert after[y + 3:y + h - 3, x + 3:x + w - 3].mean() < 12, f"face not masked in frame {f}"
        assert after[14:46, added_x + 4:added_x + 36].mean() < 12, f"added box not masked in frame {f}"
    assert checked_kept >= 1, "the kept person was never visible: the test checked nothing"
