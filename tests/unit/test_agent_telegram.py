"""The Telegram side's pure parts: a message cut to Telegram's cap as Telegram measures it, and bot commands."""

from __future__ import annotations

from cloudlet.agent import telegram


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_a_message_within_the_cap_is_sent_as_it_is() -> None:
    assert telegram.cut("  ok\n") == "ok"
    assert telegram.cut("x" * telegram.MESSAGE_LIMIT) == "x" * telegram.MESSAGE_LIMIT
    assert telegram.cut("   ") == telegram.NO_ANSWER  # Telegram refuses an empty text


def test_a_longer_message_is_cut_in_utf16_code_units_with_a_mark() -> None:
    cut = telegram.cut("x" * 5000)
    assert len(cut) == telegram.MESSAGE_LIMIT and cut.endswith(telegram.CUT_MARK)
    # an emoji outside the BMP is two code units to Telegram, and is never split in half
    cut = telegram.cut("\U0001f600" * 3000)
    assert utf16_units(cut) <= telegram.MESSAGE_LIMIT and cut.endswith(telegram.CUT_MARK)
    assert cut[:-len(telegram.CUT_MARK)] == "\U0001f600" * ((telegram.MESSAGE_LIMIT - len(telegram.CUT_MARK)) // 2)
    assert utf16_units("\U0001f600" * 2048) == telegram.MESSAGE_LIMIT
    assert telegram.cut("\U0001f600" * 2048) == "\U0001f600" * 2048


def test_commands_are_read_as_telegram_writes_them() -> None:
    assert telegram.bot_command("/start") == "/start"
    assert telegram.bot_command("/START@cloudlet_bot") == "/start"
    assert telegram.bot_command("/start deep-link-payload") == "/start"
    assert telegram.bot_command("/new") == "/new"
    assert telegram.bot_command("what is /start?") is None
