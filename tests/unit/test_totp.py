"""The TOTP step matcher: RFC 6238 codes, one step of drift either way, nothing else."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from cloudlet.auth.service import matching_step

# RFC 6238 appendix B: the SHA-1 seed, and the 8-digit code at T=59 s is 94287082 (6 digits: 287082).
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
AT_59 = datetime.fromtimestamp(59, UTC)


def test_the_rfc_6238_vector_matches_its_step() -> None:
    assert matching_step(RFC_SECRET, "287082", AT_59) == 1


def test_spaces_are_ignored_but_other_text_is_refused() -> None:
    assert matching_step(RFC_SECRET, "287 082", AT_59) == 1
    assert matching_step(RFC_SECRET, "28708", AT_59) is None
    assert matching_step(RFC_SECRET, "2870820", AT_59) is None
    assert matching_step(RFC_SECRET, "abcdef", AT_59) is None


def test_one_step_of_drift_either_way_and_no_more() -> None:
    # Step 1 covers 30..59 s. Seen from step 2 (60..89 s) it is the previous step; from step 3 it is too old.
    assert matching_step(RFC_SECRET, "287082", datetime.fromtimestamp(60, UTC)) == 1
    assert matching_step(RFC_SECRET, "287082", datetime.fromtimestamp(89, UTC)) == 1
    assert matching_step(RFC_SECRET, "287082", datetime.fromtimestamp(90, UTC)) is None
    # Seen from step 0 (0..29 s) it is the next step; from before that, too early.
    assert matching_step(RFC_SECRET, "287082", datetime.fromtimestamp(0, UTC)) == 1
