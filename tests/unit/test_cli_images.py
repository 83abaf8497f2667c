"""`cloudlet images build` names what it can build and refuses anything else before touching the node."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from cloudlet.cli.images import app


def test_an_image_that_cannot_be_built_is_refused_with_the_list_of_those_that_can() -> None:
    result = CliRunner().invoke(app, ["build", "windows-11"])
    assert result.exit_code == 2
    assert "unknown image 'windows-11'" in result.output
    assert "tiny, debian-12" in result.output


def test_an_import_whose_checksum_differs_is_refused_before_the_node_is_touched(tmp_path: Path) -> None:
    image = tmp_path / "cloud.qcow2"
    image.write_bytes(b"QFI\xfb" + bytes(60))
    result = CliRunner().invoke(app, ["import", "mine", str(image), "--sha256", "0" * 64])
    assert result.exit_code == 1
    assert f"has SHA-256 {hashlib.sha256(image.read_bytes()).hexdigest()}, not {'0' * 64}" in result.output


def test_an_import_with_a_malformed_os_family_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "cloud.qcow2"
    image.write_bytes(b"QFI\xfb" + bytes(60))
    result = CliRunner().invoke(app, ["import", "mine", str(image), "--os-family", "Debian 12"])
    assert result.exit_code == 2 and "--os-family 'Debian 12'" in result.output
