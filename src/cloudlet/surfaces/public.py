"""The explicit list of endpoints that need no credential. A test fails on any other unguarded route."""

from __future__ import annotations

PUBLIC_ENDPOINTS: frozenset[tuple[str, str]] = frozenset({
    # the WAF edges' fallback for ACME HTTP-01 (a key authorization is public by design)
    ("GET", "/.well-known/acme-challenge/{token}"),
    # health and documentation
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/health/ready"),
    ("GET", "/health/detailed"),
    ("GET", "/ready"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    # CyberPanel: "All API requests (except /health and /scopes) require authentication"
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/scopes"),
    # Evorxa: "Public read-only catalog (no auth)"
    ("GET", "/api/catalog/plans"),
    ("GET", "/api/catalog/regions"),
    ("GET", "/api/catalog/billing-cycles"),
    ("GET", "/api/catalog/exchange-rates"),
    # Shardlyn's public auth endpoints
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/register"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/forgot-password"),
    ("POST", "/v1/auth/reset-password"),
    ("GET", "/v1/auth/github"),
    ("GET", "/v1/auth/github/callback"),
    ("GET", "/v1/auth/bootstrap/status"),
    ("POST", "/v1/auth/bootstrap"),
    ("POST", "/v1/auth/mfa/challenge"),
    # Shardlyn: the SSH CA's public key is public (servers and users configure trust with it)
    ("GET", "/v1/ssh/ca-public-key"),
    # Shardlyn's inbound git webhooks: a webhook token's HMAC signature (GitHub) or secret (GitLab) in place of a
    # credential, checked by githooks.service; rate limited per client address and per token
    ("POST", "/v1/webhooks/github"),
    ("POST", "/v1/webhooks/gitlab"),
    # a new hypervisor node presents its single-use registration token instead of a credential
    ("POST", "/v1/nodes/register"),
    # the VNC websocket: its URL carries a one-time console token (issued by GET /api/instances/{id}/vnc to a
    # caller with instances:read, stored as a digest, used up by the first connection, expiring) in place of
    # a credential, which browsers cannot put on a websocket; a plain GET here only answers 426
    ("GET", "/api/consoles/vnc"),
})
