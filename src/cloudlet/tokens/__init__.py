"""API tokens: abilities, expiry, IP allow-lists, per-token rate limits, last use and usage logs."""
