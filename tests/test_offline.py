"""veil never opens a network connection: the whole pipeline runs with sockets forbidden."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLE

# An audit hook sees every socket the interpreter creates or resolves, from any module; raising
# inside it blocks the operation, so any attempt fails loudly instead of leaking.
_GUARD = """
import sys
attempts = []
def _no_network(event, args):
    if event.startswith(("socket.", "urllib.", "http.")) or event in ("getaddrinfo",):
        attempts.append(event)
        raise RuntimeError("network access attempted: " + event)
sys.addaudithook(_no_network)
import socket
try:
    socket.socket()
except RuntimeError:
    pass
else:
    raise SystemExit("guard failed to block socket creation")
attempts.clear()
from veil.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print("NETWORK ATTEMPTS:", attempts, file=sys.stderr)
"""


@pytest.mark.slow  # two fresh processes, each loading the detector
def test_redact_and_scan_run_with_network_forbidden(tmp_path: Path) -> None:
    out = tmp_path / "out.jpg"
    for args in (["redact", str(EXAMPLE), "-o", str(out)], ["scan", "--json", str(EXAMPLE)]):
        result = subprocess.run([sys.executable, "-c", _GUARD, *args], capture_output=True, text=True,
                                timeout=300)
        assert "NETWORK ATTEMPTS: []" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
    assert out.is_file()
