"""`cloudlet node prepare` on a node that is already prepared: nothing to do, and quick."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.contract.conftest import _libvirt_driver


def test_preparing_the_node_again_changes_nothing() -> None:
    _libvirt_driver()  # skips (or fails in CI) without a prepared node
    started = time.monotonic()
    result = subprocess.run([str(Path(sys.executable).parent / "cloudlet"), "node", "prepare", "--no-install"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "== " not in result.stdout  # no step had anything to do: no restart, no probe
    assert "node ready" in result.stdout
    assert "network cloudlet0" in result.stdout
    assert time.monotonic() - started < 15
