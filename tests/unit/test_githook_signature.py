"""GitHub's X-Hub-Signature-256 as Cloudlet computes it to check a delivery: HMAC-SHA256 of the raw body keyed with
the hook's secret, hex, after "sha256=" (the example of GitHub's documentation, "Validating webhook deliveries")."""

from __future__ import annotations

from cloudlet.githooks.service import github_signature


def test_githubs_documented_example() -> None:
    assert github_signature("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
