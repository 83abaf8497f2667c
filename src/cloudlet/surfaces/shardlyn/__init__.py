"""The Shardlyn-compatible surface at /v1 (and /health*, /ready)."""
