"""The CyberPanel-compatible surface at /api/v1."""
