"""The GitHub OAuth web flow: the authorize URL, the code exchange, and who signed in."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from cloudlet.auth.schemas import GitHubIdentity
from cloudlet.config import Settings, reveal
from cloudlet.kit.errors import Invalid, NotConfigured, Unavailable

SCOPE = "read:user user:email"
TIMEOUT = httpx.Timeout(10.0)
NOT_CONFIGURED = ("GitHub sign-in is not configured on this server: "
                  "set CLOUDLET_GITHUB_CLIENT_ID and CLOUDLET_GITHUB_CLIENT_SECRET.")


def require_configured(settings: Settings) -> tuple[str, str]:
    """The client id and secret, or NotConfigured when the operator has not set them."""
    client_secret = reveal(settings.github_client_secret)
    if not settings.github_client_id or not client_secret:
        raise NotConfigured(NOT_CONFIGURED)
    return settings.github_client_id, client_secret


def callback_url(settings: Settings) -> str:
    """Where GitHub sends the browser back to."""
    return f"{settings.public_url.rstrip('/')}/v1/auth/github/callback"


def authorize_url(settings: Settings, state: str) -> str:
    """GitHub's consent page for this server's OAuth app."""
    client_id, _ = require_configured(settings)
    query = urlencode({"client_id": client_id, "redirect_uri": callback_url(settings), "scope": SCOPE,
                       "state": state, "allow_signup": "true"})
    return f"{settings.github_authorize_url}?{query}"


def identify(settings: Settings, code: str) -> GitHubIdentity:
    """Exchange the callback's code for a user token and read the account and its verified primary email."""
    client_id, client_secret = require_configured(settings)
    try:
        with httpx.Client(timeout=TIMEOUT) as client:
            exchanged = client.post(settings.github_token_url, headers={"Accept": "application/json"}, data={
                "client_id": client_id, "client_secret": client_secret, "code": code,
                "redirect_uri": callback_url(settings),
            })
            grant = _json_object(exchanged)
            access_token = grant.get("access_token")
            if not isinstance(access_token, str) or not access_token:
                reason = grant.get("error_description") or grant.get("error") or "no access token was returned"
                raise Invalid("code", f"GitHub refused the sign-in: {str(reason).rstrip('.')}.", code="OAUTH_REFUSED")
            headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/vnd.github+json",
                       "X-GitHub-Api-Version": "2022-11-28"}
            api = settings.github_api_url.rstrip("/")
            profile = _json_object(client.get(f"{api}/user", headers=headers))
            emails = client.get(f"{api}/user/emails", headers=headers)
    except httpx.HTTPError as exc:
        raise Unavailable(f"GitHub could not be reached: {type(exc).__name__}.") from None
    return GitHubIdentity(
        id=_int(profile.get("id")),
        login=str(profile.get("login") or ""),
        name=profile.get("name") if isinstance(profile.get("name"), str) else None,
        verified_email=_verified_primary(emails),
    )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 500:
        raise Unavailable(f"GitHub answered {response.status_code}; try again later.")
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400 or not isinstance(body, dict):
        raise Invalid(None, f"GitHub refused the sign-in (HTTP {response.status_code}).", code="OAUTH_REFUSED")
    return body


def _int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise Invalid(None, "GitHub did not say which account signed in.", code="OAUTH_REFUSED")


def _verified_primary(response: httpx.Response) -> str | None:
    # Without the user:email grant GitHub answers 404; that only means no email to link by.
    if response.status_code != 200:
        return None
    try:
        entries = response.json()
    except ValueError:
        return None
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("primary") and entry.get("verified"):
            email = entry.get("email")
            return email if isinstance(email, str) else None
    return None
