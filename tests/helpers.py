"""Small helpers the tests share: running the real CLI and reading metadata with exiftool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_veil(*args: str | Path, drop_root_privileges: bool = False,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m veil ARGS` as a real subprocess.

    With drop_root_privileges, a root caller loses the capabilities that let it ignore file
    permissions, so permission tests mean the same thing as for a normal user.
    """
    cmd = [sys.executable, "-m", "veil", *map(str, args)]
    if drop_root_privileges and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot test file permissions")
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *cmd]
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def exiftool_tags(path: Path) -> dict[str, object]:
    """Every tag exiftool finds, grouped as 'Group:Tag' (the independent metadata oracle)."""
    exe = shutil.which("exiftool")
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("exiftool is required under CI (Debian: libimage-exiftool-perl)")
        pytest.skip("exiftool not installed")
    out = subprocess.run([exe, "-j", "-G1", "-a", "-u", "-b", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)[0]


# exiftool groups that describe the file itself rather than carry metadata from the source.
STRUCTURAL_GROUPS = {"ExifTool", "System", "File", "Composite", "JFIF", "PNG", "RIFF", "IFD0-structural",
                     "HEIC", "QuickTime", "ICC-header"}
