"""Signed outgoing webhooks: a delivery log, durable delivery with retries, and SSRF refusal."""
