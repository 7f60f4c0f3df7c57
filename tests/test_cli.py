"""The CLI end to end: bad input fails alone with a clear error, outputs appear only when complete.

Most tests run the command in-process (helpers.run_cli); the few about the process itself (file
permissions under a dropped capability, the `python -m veil` entry point) start a real one."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from helpers import run_cli, run_veil

from conftest import EXAMPLE


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _png_bomb(path: Path, side: int = 30000) -> None:
    """A tiny PNG whose header claims side x side pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture()
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    files = {}
    files["empty"] = folder / "empty.jpg"
    files["empty"].write_bytes(b"")
    data = EXAMPLE.read_bytes()
    files["truncated"] = folder / "truncated.jpg"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["text"] = folder / "notes.jpg"
    files["text"].write_text("this is not a photo\n")
    files["bomb"] = folder / "bomb.png"
    _png_bomb(files["bomb"])
    files["unsupported"] = folder / "animation.gif"
    Image.new("RGB", (8, 8), "red").save(files["unsupported"])
    return files


def test_batch_with_bad_inputs_fails_each_alone(tmp_path: Path, bad_inputs: dict[str, Path]) -> None:
    good = tmp_path / "in" / "good.jpg"
    good.write_bytes(EXAMPLE.read_bytes())
    before = {p: _digest(p) for p in [*bad_inputs.values(), good]}
    result = run_cli("redact", *bad_inputs.values(), good)
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.splitlines()
    expected_words = {
        "empty": "empty", "truncated": "truncated", "text": "not a valid JPG",
        "bomb": "decompression bomb", "unsupported": "unsupported",
    }
    for key, path in bad_inputs.items():
        errors = [line for line in lines if line.startswith("error") and str(path) in line]
        assert len(errors) == 1, (key, result.stderr)
        assert expected_words[key] in errors[0], (key, errors[0])
        assert not path.with_name(f"{path.stem}.redacted{path.suffix}").exists()
    assert good.with_name("good.redacted.jpg").is_file(), "the good file in the batch was not processed"
    for path, digest in before.items():
        assert _digest(path) == digest, f"input {path} was modified"
    # No temporary leftovers beside the inputs.
    assert not [p for p in good.parent.iterdir() if "veil-partial" in p.name]


def test_bomb_is_refused_before_allocating(tmp_path: Path) -> None:
    import subprocess
    import sys

    bomb = tmp_path / "bomb.png"
    _png_bomb(bomb)
    code = (
        "import sys\n"
        "from veil.media.image import read_image\n"
        "from veil import InputError\n"
        f"try:\n    read_image(__import__('pathlib').Path({str(bomb)!r}))\n"
        "except InputError as e:\n    print('refused', e)\n"
        # VmHWM is this process's own peak RSS (ru_maxrss would include the forking parent's).
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "refused" in out and "decompression bomb" in out
    peak_kib = int(out.strip().splitlines()[-1])
    assert peak_kib < 400_000, f"peak memory {peak_kib} KiB: pixels were allocated"


def test_input_equal_to_output_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(EXAMPLE.read_bytes())
    digest = _digest(src)
    for extra in ([], ["--overwrite"]):
        result = run_cli("redact", src, "-o", src, *extra)
        assert result.exit_code == 1
        assert f"error {src}" in result.stderr and "overwrite the input" in result.stderr
        assert _digest(src) == digest


def test_output_folder_equal_to_input_folder_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(EXAMPLE.read_bytes())
    digest = _digest(src)
    result = run_cli("redact", tmp_path, "-o", tmp_path, "--overwrite")
    assert result.exit_code == 1 and "overwrite the input" in result.stderr
    assert _digest(src) == digest


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(EXAMPLE.read_bytes())
    target = tmp_path / "photo.redacted.jpg"
    target.write_bytes(b"keep me")
    result = run_cli("redact", src)
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert target.read_bytes() == b"keep me"
    result = run_cli("redact", src, "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes()[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_inputs_never_share_an_output(tmp_path: Path, overwrite: bool) -> None:
    # Same name in two folders, given as files: both would go to out/photo.jpg.
    first, second = tmp_path / "a" / "photo.jpg", tmp_path / "b" / "photo.jpg"
    with Image.open(EXAMPLE) as example:
        for path, side in ((first, 512), (second, 384)):  # told apart by size
            path.parent.mkdir()
            example.resize((side, side)).save(path)
    out = tmp_path / "out"
    result = run_cli("redact", first, second, "-o", out, *(["--overwrite"] if overwrite else []))
    assert result.exit_code == 1
    errors = result.stderr.replace("\n", " ").split("error ")[1:]
    assert len(errors) == 1 and str(second) in errors[0] and "also the output of" in errors[0], result.stderr
    # The batch's ledger (veil.archive) sits beside the one output.
    assert [p.name for p in out.iterdir() if p.name != ".veil-ledger.sqlite"] == ["photo.jpg"]
    with Image.open(out / "photo.jpg") as written, Image.open(first) as source:
        assert written.size == source.size  # the first input's copy, not replaced by the second's


def _world_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "perm"
    folder.mkdir()
    return folder


def test_unreadable_input(tmp_path: Path) -> None:
    folder = _world_dir(tmp_path)
    src = folder / "secret.jpg"
    src.write_bytes(EXAMPLE.read_bytes())
    src.chmod(0)
    try:
        result = run_veil("redact", src, drop_root_privileges=True)
    finally:
        src.chmod(0o644)
    assert result.returncode == 1
    assert f"error {src}" in result.stderr and "permission denied" in result.stderr
    assert not (folder / "secret.redacted.jpg").exists()


def test_output_folder_not_writable(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    src.write_bytes(EXAMPLE.read_bytes())
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_veil("redact", src, "-o", locked, drop_root_privileges=True)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert f"error {src}" in result.stderr and "not writable" in result.stderr
    assert list(locked.iterdir()) == []


def test_folder_input_recurses_and_mirrors_into_output(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "day1").mkdir(parents=True)
    (src / "day1" / "a.jpg").write_bytes(EXAMPLE.read_bytes())
    Image.open(EXAMPLE).save(src / "b.png")
    (src / "notes.txt").write_text("ignored: not media")
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    result = run_cli("redact", src, "-o", out, "--report", report)
    assert result.exit_code == 0, result.stderr
    assert (out / "day1" / "a.jpg").is_file() and (out / "b.png").is_file()
    import json

    data = json.loads(report.read_text())
    assert {Path(f["path"]).name for f in data["files"]} == {"a.jpg", "b.png"}
    assert all(f["ok"] and f["faces"] >= 1 for f in data["files"])
    # Running again over the source folder skips nothing new and never re-redacts outputs.
    result = run_cli("redact", src)
    assert result.exit_code == 0
    again = run_cli("redact", src)
    assert "already exists" in again.stderr and ".redacted.redacted" not in again.stderr


def test_scan_json_format(tmp_path: Path) -> None:
    import json

    result = run_cli("scan", EXAMPLE, "--json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["path"] == str(EXAMPLE) and row["frame"] == 0
    assert (row["width"], row["height"]) == (512, 512)
    assert len(row["faces"]) == 1
    face = row["faces"][0]
    assert set(face) == {"box", "score", "mask"}
    x, y, w, h = face["box"]
    mx, my, mw, mh = face["mask"]
    assert mx <= x and my <= y and mx + mw >= x + w and my + mh >= y + h
    assert 0 < face["score"] <= 1


def test_usage_errors_exit_2() -> None:
    assert run_cli("redact").exit_code == 2
    assert run_cli("redact", EXAMPLE, "--mask", "pixelate").exit_code == 2
    assert run_cli("redact", EXAMPLE, "--keep-gps").exit_code == 2


def test_blur_warns_that_it_is_reversible(tmp_path: Path) -> None:
    result = run_cli("redact", EXAMPLE, "-o", tmp_path / "x.jpg", "--mask", "blur")
    assert result.exit_code == 0
    assert "can be partly reversed" in result.stderr


def test_help_lists_commands() -> None:
    result = run_veil("--help")
    assert result.returncode == 0 and "redact" in result.stdout and "scan" in result.stdout


def test_output_suffix_must_match_the_still_format(tmp_path: Path) -> None:
    target = tmp_path / "photo.png"
    result = run_cli("redact", EXAMPLE, "-o", target)
    assert result.exit_code == 1 and "does not end in .jpg" in result.stderr
    assert not target.exists()
    upper = tmp_path / "photo.JPEG"
    assert run_cli("redact", EXAMPLE, "-o", upper).exit_code == 0 and upper.is_file()


def test_error_text_with_brackets_is_printed_verbatim(tmp_path: Path) -> None:
    odd = tmp_path / "[bold]odd.jpg"
    odd.write_text("not an image")
    result = run_cli("redact", odd)
    assert result.exit_code == 1 and f"error {odd}" in result.stderr


# ---- one mapping from what stops a command to its message and exit code ----


def test_each_kind_of_failure_has_one_exit_code() -> None:
    from veil import AuditFailed, InputError, ModelError, OutputError, RedactionError, VeilError
    from veil._errors import MissingExtra
    from veil.cli import ExitCode, Terminated, failure

    expected = [
        (InputError("x", "a.jpg"), 1), (OutputError("x"), 1), (RedactionError("x"), 1), (VeilError("x"), 1),
        (ModelError("x"), 2), (MissingExtra("x"), 2), (AuditFailed("x"), 3),
        (KeyboardInterrupt(), 130), (Terminated(), 143),
    ]
    for exc, code in expected:
        message, got = failure(exc)
        assert (got, type(got)) == (code, ExitCode), exc
        assert "\n" not in message
    assert failure(InputError("broken", "a.jpg"))[0] == "[red]error[/] a.jpg: broken"
    assert failure(InputError("broken"), Path("b.jpg"))[0] == "[red]error[/] b.jpg: broken"
    with pytest.raises(ZeroDivisionError):  # a bug is not an exit code
        failure(ZeroDivisionError())


def test_a_missing_extra_exits_2_in_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now raises ImportError
    monkeypatch.setitem(sys.modules, "veil.web", None)
    target = tmp_path / "out.jpg"
    for args, extra in ((["redact", EXAMPLE, "-o", target, "--audit"], "audit"),
                        (["audit", EXAMPLE, EXAMPLE], "audit"),
                        (["review", tmp_path], "review")):
        result = run_cli(*args)
        assert result.exit_code == 2, (args, result.stderr)
        [line] = result.stderr.splitlines()
        assert line.startswith("error ") and f"pip install 'veil[{extra}]'" in line, line
    assert not target.exists(), "redact --audit wrote before finding the extra missing"


def test_a_long_error_stays_on_one_line_in_a_pipe(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    folder = tmp_path / ("a-rather-long-folder-name-" * 6)
    folder.mkdir()
    bad = folder / "not-a-photo.jpg"
    bad.write_text("text")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run([sys.executable, "-m", "veil", "redact", str(bad)], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"error {bad}: ") and len(lines[0]) > 200, lines
    assert lines[1].startswith("0 of 1 file redacted")


ODD_NAMES = {
    "newline": "fake\ndone x.jpg -> y.jpg.jpg",
    "escape": "clear\x1b[2J.jpg",
    "bidi": "photo\u202egpj.exe.jpg",
}


def test_names_cannot_fake_lines_or_control_the_terminal(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ODD_NAMES.values():
        (folder / name).write_bytes(EXAMPLE.read_bytes())
    undecodable = folder / os.fsdecode(b"bytes\xff.jpg")  # not UTF-8: a lone surrogate in Python
    undecodable.write_text("not a photo")
    out = tmp_path / "out"
    result = run_cli("redact", folder, "-o", out)
    assert result.exit_code == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 5, lines  # three "done", one "error", the summary: no line was faked
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
    for name in ODD_NAMES.values():
        shown = name.encode("unicode_escape").decode()
        assert f"done {folder}/{shown} -> {out}/{shown} (1 face masked)" in lines, (shown, lines)
    assert sum(line.startswith(f"error {folder}/bytes\\xff.jpg: ") for line in lines) == 1, lines

    scanned = run_cli("scan", *sorted(folder.iterdir()))
    assert scanned.exit_code == 1
    assert "\x1b" not in scanned.stdout and "\u202e" not in scanned.stdout
    assert sorted(scanned.stdout.splitlines()) == sorted(
        f"{folder}/{name.encode('unicode_escape').decode()}: 1 face" for name in ODD_NAMES.values())


def test_a_model_error_stops_the_batch_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from veil import ModelError
    from veil.archive import worker

    calls: list[Path] = []

    def broken(source: Path, *args: object, **kwargs: object) -> None:
        calls.append(source)
        raise ModelError("CenterFace weights fail their hash check; reinstall veil")

    monkeypatch.setattr(worker, "redact_file", broken)  # each batch's files go through the worker
    first, second = tmp_path / "a.jpg", tmp_path / "b.jpg"
    for path in (first, second):
        path.write_bytes(EXAMPLE.read_bytes())
    result = run_cli("redact", first, second)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines() == ["error CenterFace weights fail their hash check; reinstall veil"]
    assert len(calls) == 1, "the batch went on after the model failed"


def test_the_pixel_limit_is_veils_own_150_megapixels(tmp_path: Path) -> None:
    """Pillow warns from 89.5 MP; veil's limit is 150 MP, checked from the header before decoding."""
    from veil import InputError
    from veil.media.image import read_image

    scan = tmp_path / "scan.png"
    _png_bomb(scan, side=12000)  # 144 MP: allowed (its pixel data is cut short, so decoding fails)
    with pytest.raises(InputError) as allowed:
        read_image(scan)
    assert "bomb" not in allowed.value.message and "truncated" in allowed.value.message
    _png_bomb(scan, side=12300)  # 151 MP: over the limit
    with pytest.raises(InputError, match="over the limit of 150 megapixels"):
        read_image(scan)


def test_an_output_folder_inside_the_input_folder_is_not_walked(tmp_path: Path) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    Image.new("RGB", (64, 48), (120, 130, 140)).save(folder / "a.png")
    safe = folder / "safe"
    for _ in range(2):  # the second run must not take the first run's copy as an input
        result = run_cli("redact", folder, "-o", safe, "--overwrite")
        assert result.exit_code == 0, result.stderr
    assert sorted(p.relative_to(folder) for p in folder.rglob("*.png")) == [Path("a.png"), Path("safe/a.png")]
