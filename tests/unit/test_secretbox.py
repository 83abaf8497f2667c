"""Sealed secrets open only with the same installation secret and purpose, and never read as plaintext."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudlet.kit.secretbox import SecretBox


@given(st.text(max_size=200))
def test_what_is_sealed_opens_again(plaintext: str) -> None:
    box = SecretBox("installation-secret", "mfa")
    sealed = box.seal(plaintext)
    assert box.open(sealed) == plaintext
    assert len(plaintext) < 12 or plaintext not in sealed  # short strings turn up in any base64 by chance


def test_another_key_or_purpose_or_a_changed_byte_cannot_open_it() -> None:
    sealed = SecretBox("installation-secret", "mfa").seal("JBSWY3DPEHPK3PXP")
    with pytest.raises(ValueError, match="altered or sealed under another key"):
        SecretBox("another-secret", "mfa").open(sealed)
    with pytest.raises(ValueError):
        SecretBox("installation-secret", "webhooks").open(sealed)
    tampered = sealed[:-5] + ("A" if sealed[-5] != "A" else "B") + sealed[-4:]
    with pytest.raises(ValueError):
        SecretBox("installation-secret", "mfa").open(tampered)
