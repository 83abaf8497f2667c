"""The primary surface at /api (the Evorxa reference)."""
