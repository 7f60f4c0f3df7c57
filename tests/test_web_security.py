"""The review app's gate, against a real uvicorn server on 127.0.0.1: token, Host, Origin, paths, sizes."""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    from veil.edits import FaceAction
    from veil.web.edits import video_plan
    from veil.web.errors import RequestError
    from veil.web.video import VideoAnalysis

    analysis = VideoAnalysis(state="ready", width=100, height=80,
                             regions=[[[10, 10, 20, 20, 4, 0.9, 0], [50, 10, 20, 20, 5, 0.8, 0]],
                                      [[12, 10, 20, 20, 4, 0.0, 1]], []])
    plan, kept, removed = video_plan(analysis, {
        "keep_tracks": [4, 4], "removed": [{"frame": 1, "mask": [12, 10, 20, 20]}, {"frame": 0, "mask": [50, 10, 20, 20]}],
        "added": [{"keys": [{"frame": 0, "box": [0, 0, 5, 5]}, {"frame": 2, "box": [10, 0, 5, 5]}]}]})
    assert (kept, removed) == (1, 2)
    assert [(r.action, r.track) for r in plan.releases] == [(FaceAction.KEEP, 4)]
    frame0 = {f.mask: f for f in plan.frames[0].faces}
    assert frame0[(10, 10, 20, 20)].track == 4 and frame0[(50, 10, 20, 20)].action is FaceAction.REMOVE
    [both] = plan.frames[1].faces  # the kept box marked "not a face" is listed once
    assert both.track == 4 and both.action is FaceAction.REMOVE
    assert len(plan.adds) == 1 and plan.adds[0].box_at(1) == (5.0, 0.0, 5.0, 5.0)
    for bad in ({"keep_tracks": "4"}, {"removed": [{"frame": 3, "mask": [0, 0, 5, 5]}]},
                {"removed": [{"frame": 0}]}, {"added": [{"keys": []}]},
                {"added": [{"keys": [{"frame": 0, "box": [0, 0, 5]}]}]}, {"keep_tracks": [True]},
                {"keep_tracks": [10 ** 4000]}, {"added": [{"keys": 7}]},
                {"removed": [{"frame": 0, "mask": [90, 0, 20, 5]}]},
                {"added": [{"keys": [{"frame": 1, "box": [0, 0, 5, 5]}, {"frame": 1, "box": [1, 0, 5, 5]}]}]}):
        with pytest.raises(RequestError) as info:
            video_plan(analysis, bad)
        assert info.value.status == 400 and len(info.value.message) < 200, (bad, info.value.message)


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


# ---- hostile and unusual inputs: a short 400 (or 409), never a 500 with a traceback ----


NESTED = "[" * 100_000 + "]" * 100_000
LONG_NUMBER = "7" * 5000  # past Python's 4300-digit limit for int("...")


@pytest.fixture()
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if uvicorn logged an exception (a 500 with a traceback in the server log)."""
    with caplog.at_level(logging.ERROR):
        yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.usefixtures("no_server_errors")
@pytest.mark.parametrize("body", [NESTED, '{"keep_track": ' + LONG_NUMBER + "}",
                                  '{"add": [0, 0, 5, ' + "9" * 400 + "]}"], ids=["nested", "digits", "huge"])
def test_hostile_plan_upload_is_a_400_naming_the_line(server: ReviewServer, body: str) -> None:
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        answer = client.post("/api/files/0/plan", content=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("line 1: ") and len(answer.json()["error"]) < 200


@pytest.mark.usefixtures("no_server_errors")
@pytest.mark.parametrize("body", [
    NESTED, '{"regions": ' + NESTED + "}", '{"regions": [], "mask": ' + LONG_NUMBER + "}",
    '{"regions": [{"mask": [0, 0, 5, ' + "9" * 4000 + '], "action": "mask", "added": true}]}',
    '{"regions": [{"mask": [0, 0, 5, 5], "action": ["mask"]}]}', '{"regions": [], "mask": ["solid"]}',
    '{"regions": [{"mask": [0, 0, 5, 5], "action": "mask", "added": 1}]}', "\xff\xfe",
], ids=["nested", "nested-regions", "digits", "huge", "list-action", "list-mask", "added-not-bool", "not-utf8"])
def test_hostile_export_request_is_a_400(server: ReviewServer, folder: Path, body: str) -> None:
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        answer = client.post("/api/files/0/export", content=body.encode("latin-1"))
        assert answer.status_code == 400, answer.text
        assert len(answer.json()["error"]) < 200
    assert not (folder / "a.redacted.png").exists()


@pytest.mark.usefixtures("no_server_errors")
def test_hostile_video_export_is_a_400(folder: Path) -> None:
    from veil.web.video import VideoAnalysis

    (folder / "clip.mp4").write_bytes(b"not decoded: the review pass is filled in below")
    library = Library.open(folder, Config(), detector=StaticDetector([]))
    [video] = [i for i in library.items if i.kind == "video"]
    library._videos[video.id] = VideoAnalysis(state="ready", width=100, height=80,
                                              regions=[[[10, 10, 20, 20, 4, 0.9, 0]], []])
    with ReviewServer(library) as running, httpx.Client(base_url=base(running),
                                                        headers={"X-Veil-Token": running.token}) as client:
        for body in ('{"keep_tracks": [' + LONG_NUMBER + "]}", '{"keep_tracks": [' + "7" * 4000 + "]}",
                     '{"removed": [{"frame": ' + "9" * 4000 + ', "mask": [0, 0, 5, 5]}]}',
                     '{"added": [{"keys": 3}]}', '{"added": [{"keys": [{"frame": 0, "box": [0, 0, 1e999, 5]}]}]}'):
            answer = client.post(f"/api/files/{video.id}/export", content=body)
            assert answer.status_code == 400, (body[:40], answer.text)
            assert len(answer.json()["error"]) < 200
    assert not list(folder.glob("clip.redacted*"))


@pytest.mark.usefixtures("no_server_errors")
@pytest.mark.parametrize("path", ["/api/files/{n}/picture", "/api/files/{n}/regions", "/api/files/{n}/video",
                                  "/api/files/0/frames/{n}"])
def test_an_overlong_number_in_the_path_is_a_400(server: ReviewServer, path: str) -> None:
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        answer = client.get(path.format(n=LONG_NUMBER))
        assert answer.status_code == 400 and "number too long" in answer.json()["error"]
        assert client.get(path.format(n="9" * 10)).status_code == 400


@pytest.mark.usefixtures("no_server_errors")
@pytest.mark.parametrize("length", ["9" * 5000, "\u00b2", "1 2"])
def test_a_bad_content_length_never_reaches_int(server: ReviewServer, length: str) -> None:
    status, _headers, _body = raw_exchange(server, (
        f"POST /api/files/0/export HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"X-Veil-Token: {server.token}\r\nContent-Length: {length}\r\n\r\n{{}}").encode("latin-1"))
    assert status == 400


def raw_exchange(server: ReviewServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are on a fresh connection; read the whole answer (bounded in time and size)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while len(data) < 1_000_000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("request_bytes", [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n",
                                           b"GET /\x00 HTTP/1.1\r\n\r\n"], ids=["line", "header", "nul"])
def test_uvicorns_own_400_carries_the_security_headers(server: ReviewServer, request_bytes: bytes) -> None:
    from veil.web.guard import SECURITY_HEADERS

    status, headers, _ = raw_exchange(server, request_bytes)
    assert status == 400
    for name, value in SECURITY_HEADERS:
        assert headers.get(name.decode()) == value.decode(), name


# ---- a listed file swapped for a link to a picture outside the folder ----


@pytest.fixture()
def outside_picture(tmp_path: Path) -> Path:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = elsewhere / "private.png"
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(path)
    return path


def swap_for_link(listed: Path, target: Path) -> None:
    listed.unlink()
    listed.symlink_to(target)


def outputs(*folders: Path) -> list[Path]:
    return sorted(p for f in folders for p in f.rglob("*") if "redacted" in p.name)


@pytest.mark.usefixtures("no_server_errors")
@pytest.mark.parametrize("seen_first", [False, True], ids=["fresh", "cached"])
def test_a_file_swapped_for_a_link_is_refused(server: ReviewServer, folder: Path, outside_picture: Path,
                                              seen_first: bool) -> None:
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        if seen_first:  # picture and scan already cached from the real file
            assert client.get("/api/files/0/picture").status_code == 200
            assert client.get("/api/files/0/regions").status_code == 200
        swap_for_link(folder / "a.png", outside_picture)
        for answer in (client.get("/api/files/0/picture"), client.get("/api/files/0/regions"),
                       client.post("/api/files/0/export", json={"regions": []})):
            assert answer.status_code == 409, answer.text
            assert "a.png was replaced" in answer.json()["error"]
    assert outputs(folder, outside_picture.parent) == []


@pytest.mark.usefixtures("no_server_errors")
def test_a_file_replaced_by_another_file_is_refused(server: ReviewServer, folder: Path,
                                                    outside_picture: Path) -> None:
    # Saved over the way editors do: a new file renamed onto the name (unlinking first could let
    # the new file reuse the old inode number, which no (device, inode) check can tell apart).
    shutil.copy(outside_picture, folder / "a.new")
    os.replace(folder / "a.new", folder / "a.png")
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        assert client.get("/api/files/0/picture").status_code == 409
        assert client.post("/api/files/0/export", json={"regions": []}).status_code == 409
    assert outputs(folder) == []


def test_a_swap_during_export_fails_the_job_and_removes_the_copy(
        server: ReviewServer, folder: Path, outside_picture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import veil.web.export as export_module

    real_redact = export_module.redact_file

    def redact_then_swap(*args: Any, **kwargs: Any) -> Any:
        report = real_redact(*args, **kwargs)
        swap_for_link(folder / "a.png", outside_picture)
        return report

    monkeypatch.setattr(export_module, "redact_file", redact_then_swap)
    with httpx.Client(base_url=base(server), headers={"X-Veil-Token": server.token}) as client:
        job = client.post("/api/files/0/export", json={"regions": []}).json()
        while job["state"] == "running":
            time.sleep(0.05)
            job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["state"] == "failed" and "a.png was replaced" in job["error"]
    assert outputs(folder, outside_picture.parent) == []
