"""The README's tour, run word for word against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_script() -> str:
    """The shell block between the tour markers."""
    text = README.read_text()
    block = re.search(r"<!-- tour:start -->\s*```sh\n(.*?)```\s*<!-- tour:end -->", text, re.S)
    assert block is not None, "README.md lost its tour markers"
    return block.group(1)


def json_documents(text: str) -> list[dict[str, object]]:
    """The JSON documents printed one after another (curl adds no newline between them)."""
    decoder, documents, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        document, at = decoder.raw_decode(text, at)
        documents.append(document)
    return documents


def test_the_readme_tour_works(server: str) -> None:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", tour_script()], env={**os.environ, "API": server},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    bootstrap, me, test, plans, balance = json_documents(result.stdout)
    assert "access_token" in bootstrap
    assert me["user"]["email"] == "admin@example.com"
    assert me["projects"][0]["current_user_role"] == "owner"
    assert test["success"] is True
    assert test["data"]["scopes"] == ["vps:read", "vps:write"]
    categories = {c["code"]: c for c in plans["categories"]}  # the default catalogue, seeded on first start
    assert set(categories) == {"standard", "cpu-optimized"}
    assert balance == {"balance_cents": 0, "balance_usd": 0}
