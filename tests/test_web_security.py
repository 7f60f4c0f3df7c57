"""The review app's gate, against a real uvicorn server on 127.0.0.1: token, Host, Origin, paths, sizes."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from veil import Config, StaticDetector
from veil.web import Library, ReviewServer
from veil.web.app import MAX_JSON_BYTES, MAX_PLAN_BYTES


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(30, 220, (120, 160, 3), dtype=np.uint8)).save(root / "a.png")
    (tmp_path / "secret.txt").write_text("outside the served folder")
    return root


@pytest.fixture()
def server(folder: Path) -> Iterator[ReviewServer]:
    detector = StaticDetector([(20, 20, 50, 60), (100, 30, 130, 70)])
    library = Library.open(folder, Config(), detector=detector)
    with ReviewServer(library) as running:
        yield running


def base(server: ReviewServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def raw_get(server: ReviewServer, path: str, headers: dict[str, str]) -> int:
    """GET with the path sent exactly as given (httpx would normalise '..')."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_binds_loopback_and_prints_a_random_token(folder: Path) -> None:
    library = Library.open(folder, Config(), detector=StaticDetector([]))
    one, two = ReviewServer(library), ReviewServer(library)
    try:
        assert one._socket.getsockname()[0] == "127.0.0.1"
        assert one.url.startswith(f"http://127.0.0.1:{one.port}/?token=")
        assert one.token != two.token and len(one.token) >= 40
    finally:
        one._socket.close()
        two._socket.close()


def test_the_token_is_required_everywhere(server: ReviewServer) -> None:
    with httpx.Client(base_url=base(server)) as client:
        for path in ("/", "/api/files", "/api/files/0/picture", "/static/app.js", "/nope"):
            assert client.get(path).status_code == 403, path
            assert client.get(path, params={"token": "wrong"}).status_code == 403, path
            assert client.get(path, headers={"X-Veil-Token": server.token[:-1]}).status_code == 403
        assert client.get("/api/files", headers={"X-Veil-Token": server.token}).status_code == 200
        assert client.post("/api/files/0/export", json={}).status_code == 403


def test_page_link_sets_a_strict_httponly_cookie_and_drops_the_token(server: ReviewServer) -> None:
    with httpx.Client(base_url=base(server)) as client:
        first = client.get("/", params={"token": server.token})
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = client.get("/")  # the cookie alone now opens the page
        assert page.status_code == 200 and "veil review" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "connect-src 'self'" in csp
        assert page.headers["cache-control"] == "no-store"
        # Changing anything needs the header, not just the cookie a cross-site form would carry.
        assert client.post("/api/files/0/export", json={}).status_code == 403


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "192.168.1.5:{port}", "127.0.0.1:1", "localhost:{port}@evil.example"])
def test_foreign_host_is_refused(server: ReviewServer, host: str) -> None:
    status = raw_get(server, "/api/files", {"Host": host.format(port=server.port),
                                            "X-Veil-Token": server.token})
    assert status in (403, 421)


def test_local_hosts_are_accepted(server: ReviewServer) -> None:
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        assert raw_get(server, "/api/files", {"Host": host, "X-Veil-Token": server.token}) == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1",
                                    "https://127.0.0.1:{port}", "http://localhost.evil.example:{port}"])
def test_foreign_origin_is_refused(server: ReviewServer, origin: str) -> None:
    with httpx.Client(base_url=base(server)) as client:
        headers = {"Origin": origin.format(port=server.port), "X-Veil-Token": server.token}
        assert client.get("/api/files", headers=headers).status_code == 403
        assert client.post("/api/files/0/export", headers=headers, json={}).status_code == 403


def test_cross_site_fetch_metadata_is_refused(server: ReviewServer) -> None:
    with httpx.Client(base_url=base(server)) as client:
        headers = {"Sec-Fetch-Site": "cross-site", "X-Veil-Token": server.token}
        assert client.get("/api/files", headers=headers).status_code == 403


@pytest.mark.parametrize("path", [
    "/static/../../secret.txt", "/static/..%2F..%2Fsecret.txt", "/static/%2e%2e/%2e%2e/secret.txt",
    "/api/files/../../secret.txt", "/api/files/0/../../../secret.txt/picture", "/../secret.txt",
    "/static/index.html", "/static/app.py", "/api/files/1/picture", "/api/files/-1/picture",
    "/api/files/a.png/picture", "/api/jobs/..%2F..",
])
def test_paths_outside_the_app_are_404(server: ReviewServer, path: str) -> None:
    assert raw_get(server, path, {"X-Veil-Token": server.token}) == 404


def test_media_is_served_by_index_only(server: ReviewServer) -> None:
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        listing = client.get("/api/files").json()
        assert listing["files"] == [{"id": 0, "name": "a.png", "kind": "image"}]
        picture = client.get("/api/files/0/picture")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
        regions = client.get("/api/files/0/regions").json()
        assert len(regions["regions"]) == 2


def test_oversized_uploads_are_413(server: ReviewServer) -> None:
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        big_plan = "#" * (MAX_PLAN_BYTES + 1)
        assert client.post("/api/files/0/plan", content=big_plan).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
            for _ in range(MAX_PLAN_BYTES // 65536 + 2):
                yield b"#" * 65536

        assert client.post("/api/files/0/plan", content=chunks()).status_code == 413
        big_export = json.dumps({"regions": [], "pad": "x" * MAX_JSON_BYTES})
        assert client.post("/api/files/0/export", content=big_export).status_code == 413
        many = {"regions": [{"mask": [0, 0, 5, 5], "action": "mask", "added": True}] * 5001}
        assert client.post("/api/files/0/export", json=many).status_code == 413


def test_plan_upload_count_is_bounded(server: ReviewServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import veil.web.library as library_module

    monkeypatch.setattr(library_module, "MAX_PLAN_UPLOADS", 2)
    plan = json.dumps({"add": [1, 1, 10, 10]})
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        assert client.post("/api/files/0/plan", content=plan).status_code == 200
        assert client.post("/api/files/0/plan", content=plan).status_code == 200
        assert client.post("/api/files/0/plan", content=plan).status_code == 413


def test_bad_plan_upload_is_a_clear_400(server: ReviewServer) -> None:
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        answer = client.post("/api/files/0/plan", content='{"keep_track": "x"}')
        assert answer.status_code == 400
        assert answer.json()["error"].startswith("line 1: ")


def test_export_writes_beside_the_original_with_the_edits(server: ReviewServer, folder: Path) -> None:
    original = np.asarray(Image.open(folder / "a.png").convert("RGB"))
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        regions = client.get("/api/files/0/regions").json()["regions"]
        regions[0]["action"] = "keep"
        regions.append({"mask": [140, 100, 15, 15], "action": "mask", "added": True})
        job = client.post("/api/files/0/export", json={"regions": regions, "mask": "solid"}).json()
        for _ in range(200):
            job = client.get(f"/api/jobs/{job['id']}").json()
            if job["state"] != "running":
                break
            time.sleep(0.05)
        assert job["state"] == "done", job
        assert job["faces"] == 2 and job["kept"] == 1
    out = folder / "a.redacted.png"
    assert Path(job["output"]) == out
    result = np.asarray(Image.open(out).convert("RGB"))
    x, y, w, h = regions[0]["mask"]
    assert np.array_equal(result[y:y + h, x:x + w], original[y:y + h, x:x + w])
    x, y, w, h = regions[1]["mask"]
    assert (result[y:y + h, x:x + w] == 0).all()
    assert (result[100:115, 140:155] == 0).all()


def test_video_routes_refuse_pictures_and_bad_frames(server: ReviewServer) -> None:
    headers = {"X-Veil-Token": server.token}
    for path in ("/api/files/0/video", "/api/files/0/frames/0", "/api/files/0/frames/-1",
                 "/api/files/0/frames/..%2F..", "/api/files/5/video"):
        assert raw_get(server, path, headers) == 404, path


def test_review_command_refuses_missing_and_empty_folders(tmp_path: Path) -> None:
    from helpers import run_cli

    missing = run_cli("review", tmp_path / "nope")
    assert missing.exit_code == 2 and "no such file or folder" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli("review", tmp_path / "empty")
    assert empty.exit_code == 1 and "no pictures found" in empty.stderr


def test_uploaded_plan_marks_regions_and_is_matched_to_the_file(server: ReviewServer, folder: Path) -> None:
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        regions = client.get("/api/files/0/regions").json()
        first = regions["regions"][0]["mask"]
        line = {"path": "a.png", "frame": 0, "width": 160, "height": 120,
                "faces": [{"mask": first, "keep": True}]}
        plan = json.dumps(line) + "\n" + json.dumps({"add": [100, 90, 20, 20]}) + "\n"
        answer = client.post("/api/files/0/plan", content=plan)
        assert answer.status_code == 200, answer.text
        by_action = sorted((r["action"], r["added"]) for r in answer.json()["regions"])
        assert by_action == [("keep", False), ("mask", False), ("mask", True)]
        other = client.post("/api/files/0/plan", content=json.dumps({**line, "path": "b.png"}))
        assert other.status_code == 400 and "says nothing about a.png" in other.json()["error"]


def test_video_edits_become_a_positional_plan() -> None:
    from veil.planfile import FaceAction, parse_plan
    from veil.web.video import VideoAnalysis, VideoRequestError, video_plan_lines

    analysis = VideoAnalysis(state="ready", width=100, height=80,
                             regions=[[[10, 10, 20, 20, 4, 0.9, 0], [50, 10, 20, 20, 5, 0.8, 0]],
                                      [[12, 10, 20, 20, 4, 0.0, 1]], []])
    lines, kept, removed = video_plan_lines(Path("/v/clip.mp4"), analysis, {
        "keep_tracks": [4], "removed": [{"frame": 1, "mask": [12, 10, 20, 20]}, {"frame": 0, "mask": [50, 10, 20, 20]}],
        "added": [{"keys": [{"frame": 0, "box": [0, 0, 5, 5]}, {"frame": 2, "box": [10, 0, 5, 5]}]}]})
    assert (kept, removed) == (1, 2)
    plan = parse_plan(lines, "test", [Path("/v")]).for_input(Path("/v/clip.mp4"))
    frame0 = {f.mask: f for f in plan.frames[0].faces}
    assert frame0[(10, 10, 20, 20)].track == 4 and frame0[(50, 10, 20, 20)].action is FaceAction.REMOVE
    [both] = plan.frames[1].faces  # the kept box marked "not a face" is listed once
    assert both.track == 4 and both.action is FaceAction.REMOVE
    assert len(plan.adds) == 1 and plan.adds[0].box_at(1) == (5.0, 0.0, 5.0, 5.0)
    for bad in ({"keep_tracks": "4"}, {"removed": [{"frame": 3, "mask": [0, 0, 5, 5]}]},
                {"removed": [{"frame": 0}]}, {"added": [{"keys": []}]},
                {"added": [{"keys": [{"frame": 0, "box": [0, 0, 5]}]}]}, {"keep_tracks": [True]}):
        with pytest.raises(VideoRequestError):
            video_plan_lines(Path("/v/clip.mp4"), analysis, bad)


def test_export_to_the_output_folder_given_at_start(folder: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "published"
    library = Library.open(folder, Config(), output_dir=out_dir, detector=StaticDetector([(20, 20, 50, 60)]))
    with ReviewServer(library) as server, httpx.Client(base_url=base(server),
                                                      headers={"X-Veil-Token": server.token}) as client:
        assert client.get("/api/files").json()["output_folder"] == str(out_dir.resolve())
        regions = client.get("/api/files/0/regions").json()["regions"]
        job = client.post("/api/files/0/export", json={"regions": regions, "destination": "folder"}).json()
        while job["state"] == "running":
            time.sleep(0.05)
            job = client.get(f"/api/jobs/{job['id']}").json()
        assert job["state"] == "done", job
        assert Path(job["output"]) == out_dir.resolve() / "a.png" and Path(job["output"]).is_file()
        again = client.post("/api/files/0/export", json={"regions": regions, "destination": "folder"}).json()
        while again["state"] == "running":
            time.sleep(0.05)
            again = client.get(f"/api/jobs/{again['id']}").json()
        assert again["state"] == "failed" and "already exists" in again["error"]
        bad = client.post("/api/files/0/export", json={"regions": regions, "destination": "/etc"})
        assert bad.status_code == 400
    assert not (folder / "a.redacted.png").exists()
