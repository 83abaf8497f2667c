"""`cloudlet images build` names what it can build and refuses anything else before touching the node."""

from __future__ import annotations

from typer.testing import CliRunner

from cloudlet.cli.images import app


def test_an_image_that_cannot_be_built_is_refused_with_the_list_of_those_that_can() -> None:
    result = CliRunner().invoke(app, ["build", "windows-11"])
    assert result.exit_code == 2
    assert "unknown image 'windows-11'" in result.output
    assert "tiny, debian-12" in result.output
