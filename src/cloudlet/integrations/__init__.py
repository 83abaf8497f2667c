"""Integrations: a project's events told to Slack, Discord, Telegram, a signed webhook or an inbox, durably."""
