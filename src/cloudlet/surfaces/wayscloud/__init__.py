"""The WaysCloud-compatible surface at /v1/vps."""
