"""The console history's shape, shared by every driver: boots joined with separator lines, the last MiB kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from cloudlet.drivers.base import (
    BOOT_SEPARATOR,
    CONSOLE_HISTORY_BYTES,
    HISTORY_DROPPED,
    boot_separator,
    history_after_boot,
    history_output,
    keep_last,
)

AT = datetime(2025, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)


def test_a_separator_says_how_and_when_a_boot_began_in_utc() -> None:
    line = boot_separator("rebooted", AT.astimezone(timezone(timedelta(hours=2))))
    assert line == "-- cloudlet: guest rebooted at 2025-03-04T05:06:07Z --"
    found = BOOT_SEPARATOR.match(line)
    assert found is not None and found.groups() == ("rebooted", "2025-03-04T05:06:07Z")


def test_the_first_boot_has_no_separator_and_each_later_one_begins_with_its_own() -> None:
    assert history_after_boot("", "", "started", AT) == ""  # nothing printed yet: nothing to separate
    first = history_after_boot("", "boot one\nlogin: ", "rebooted", AT)  # it ended mid-line
    assert first == "boot one\nlogin: \n-- cloudlet: guest rebooted at 2025-03-04T05:06:07Z --\n"
    second = history_after_boot(first, "boot two\n", "started", AT + timedelta(minutes=1))
    assert second == first + "boot two\n-- cloudlet: guest started at 2025-03-04T05:07:07Z --\n"
    output = history_output(second, "boot three\n")
    assert output.lines[-1] == "boot three" and output.truncated is False
    assert [line for line in output.lines if BOOT_SEPARATOR.match(line)] == [
        "-- cloudlet: guest rebooted at 2025-03-04T05:06:07Z --",
        "-- cloudlet: guest started at 2025-03-04T05:07:07Z --",
    ]


def test_what_fits_is_kept_as_it_is() -> None:
    text = "x" * (CONSOLE_HISTORY_BYTES - 1) + "\n"
    assert keep_last(text) is text
    assert history_output(text, "").truncated is False


def test_the_oldest_lines_go_first_and_a_line_says_so() -> None:
    text = "".join(f"line {n:04d}\n" for n in range(100))  # 10 bytes a line
    kept = keep_last(text, limit=200)
    assert len(kept.encode()) <= 200
    lines = kept.splitlines()
    assert lines[0] == HISTORY_DROPPED
    assert lines[1:] == [f"line {n:04d}" for n in range(100 - len(lines) + 1, 100)]  # whole lines, the newest
    assert len(lines) - 1 == (200 - len(HISTORY_DROPPED) - 1) // 10


def test_a_cut_on_a_line_boundary_keeps_that_line() -> None:
    marker = len(HISTORY_DROPPED) + 1
    kept = keep_last("a" * 60 + "\n" + "b" * 9 + "\n", limit=marker + 10)  # the room is exactly the last line
    assert kept == HISTORY_DROPPED + "\n" + "b" * 9 + "\n"


def test_a_line_longer_than_the_room_keeps_its_newest_bytes() -> None:
    kept = keep_last("old\n" + "z" * 500 + "END\n", limit=200)
    assert len(kept.encode()) == 200 and kept.startswith(HISTORY_DROPPED + "\nzzz") and kept.endswith("zEND\n")


def test_a_character_cut_in_two_is_left_out_and_the_bound_holds() -> None:
    text = "é" * 300  # two bytes each, no newline
    kept = keep_last(text, limit=101 + len(HISTORY_DROPPED))
    assert len(kept.encode()) <= 101 + len(HISTORY_DROPPED)
    assert kept == HISTORY_DROPPED + "\n" + "é" * 50


def test_a_history_over_its_bound_is_marked_truncated_and_stays_within_it() -> None:
    archived = history_after_boot("", "".join(f"old {n:07d}\n" for n in range(100_000)), "rebooted", AT)
    assert archived.startswith(HISTORY_DROPPED + "\n") and len(archived.encode()) <= CONSOLE_HISTORY_BYTES
    output = history_output(archived, "current boot\n")
    assert output.truncated is True and output.lines[0] == HISTORY_DROPPED
    assert output.lines[-2:] == ["-- cloudlet: guest rebooted at 2025-03-04T05:06:07Z --", "current boot"]
    assert len(output.text.encode()) <= CONSOLE_HISTORY_BYTES
