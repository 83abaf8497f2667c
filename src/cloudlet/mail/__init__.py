"""Outgoing mail: every message is kept in the outbox, and sent over SMTP when SMTP is configured."""
