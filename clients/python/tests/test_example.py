"""examples/python/shred_demo.py runs and exits 0 (alice unreadable, bob intact)."""

from __future__ import annotations

import subprocess
import sys

from .padlock_processes import ROOT


def test_shred_demo() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python" / "shred_demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "alice: <deleted: keys shredded>" in done.stdout
    assert "bob@example.com" in done.stdout
