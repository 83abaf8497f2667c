"""The README's tour, run word for word against a real server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.contract.conftest import tiny_image
from tests.e2e.conftest import VENV_BIN

__all__ = ["tiny_image"]

pytestmark = pytest.mark.long(seconds=90)

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_script() -> str:
    """The shell block between the tour markers."""
    text = README.read_text()
    block = re.search(r"<!-- tour:start -->\s*```sh\n(.*?)```\s*<!-- tour:end -->", text, re.S)
    assert block is not None, "README.md lost its tour markers"
    return block.group(1)


def json_documents(text: str) -> tuple[list[dict[str, object]], str]:
    """The JSON documents printed one after another (curl adds no newline between them), and the text after."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        if text[at] not in "[{":
            break
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
    return documents, text[at:]


def test_the_readme_tour_works(server: str, server_env: dict[str, str], tiny_image: Path) -> None:
    # what scripts/serve.sh does before serving: the tiny image in the node's pool and in the registry
    subprocess.run([str(VENV_BIN / "cloudlet"), "images", "import", "tiny", str(tiny_image)], env=server_env,
                   check=True, capture_output=True, timeout=120)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", tour_script()], env={**server_env, "API": server},
                            cwd=README.parent, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    documents, rest = json_documents(result.stdout)
    bootstrap, me, test, plans, balance = documents
    assert "access_token" in bootstrap
    assert me["user"]["email"] == "admin@example.com"
    assert me["projects"][0]["current_user_role"] == "owner"
    assert test["success"] is True
    assert test["data"]["scopes"] == ["vps:read", "vps:write"]
    categories = {c["code"]: c for c in plans["categories"]}  # the default catalogue, seeded on first start
    assert set(categories) == {"standard", "cpu-optimized"}
    assert balance == {"balance_cents": 0, "balance_usd": 0}
    # the demo: a real guest built, its readiness line from the serial console, then deleted with a refund
    assert "credited 2000" in rest
    assert "10. finalize" in rest and "hostname=demo-1" in rest
    assert "CLOUDLET_READY instance-id=" in rest and "password=set" in rest
    assert "deleted; refunded 6.00" in rest
