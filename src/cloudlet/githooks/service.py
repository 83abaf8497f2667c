"""Webhook tokens (minted, listed without secrets, revoked) and the deliveries they verify.

A project mints a token and gives its secret to a git host: to GitHub as the hook's secret, with the hook's
URL naming the token (`/v1/webhooks/github?token_id=<id>`: GitHub sends only a signature, so the token must
be named); to GitLab as the hook's secret token (`/v1/webhooks/gitlab`, which finds the token by the secret
GitLab sends; `?token_id=` may name it too). A verified push becomes a git.push event of the token's project;
anything unverified is a 401 and leaves no trace but its count against the rate limits.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import urllib.parse
from functools import lru_cache
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from cloudlet.config import Settings
from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind, GitProvider, GitPush
from cloudlet.githooks import repository
from cloudlet.githooks.models import WebhookToken
from cloudlet.githooks.schemas import (
    Delivery,
    GitHubPushBody,
    GitLabPushBody,
    HookReceipt,
    MintedWebhookToken,
    ReceiptStatus,
    WebhookTokenCreate,
    WebhookTokenRead,
)
from cloudlet.kit import clock, locks
from cloudlet.kit.errors import Conflict, Invalid, NotFound, RateLimited, Unauthenticated
from cloudlet.kit.ids import digest
from cloudlet.kit.ratelimit import RateLimiter, rule
from cloudlet.kit.secretbox import SecretBox
from cloudlet.projects import service as projects
from cloudlet.projects.schemas import Actor

SECRET_PREFIX = "whk_"
PREFIX_LENGTH = len(SECRET_PREFIX) + 8
# 256 random bits in 43 base64url characters, the prefix showing 8 of them. The whole secret stays within
# SHA-256's 64-byte block: HMAC hashes a longer key first, and the digest kept to find a GitLab token would then
# sign GitHub deliveries as well as the secret does.
SECRET_BYTES = 32
MAX_TOKENS_PER_PROJECT = 100
SIGNATURE_SCHEME = "sha256="
REFUSED = "The webhook's signature or token does not match a webhook token."
B = TypeVar("B", bound=BaseModel)


# --- tokens --------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _box(master_secret: str) -> SecretBox:
    return SecretBox(master_secret, "git-hooks")


def mint(session: Session, settings: Settings, actor: Actor, project_id: int,
         data: WebhookTokenCreate) -> MintedWebhookToken:
    """A new token of a project the actor is a member of; its secret is in this answer only (409 past 100)."""
    projects.require_membership(session, actor.user_id, project_id, fence=actor.project_scope)
    name = data.name.strip()
    if not name:
        raise Invalid("name", "A token's name cannot be blank.")
    locks.hold(session, f"webhook-tokens-of-project:{project_id}")  # two mints at once cannot both pass the count
    if repository.count_for_project(session, project_id) >= MAX_TOKENS_PER_PROJECT:
        raise Conflict(f"A project can hold at most {MAX_TOKENS_PER_PROJECT} webhook tokens; delete one it no "
                       "longer uses.", code="TOO_MANY_TOKENS")
    secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    token = repository.insert(session, WebhookToken(
        project_id=project_id, created_by=actor.user_id, name=name, purpose=data.purpose.strip(),
        prefix=secret[:PREFIX_LENGTH], secret_hash=digest(secret),
        secret_sealed=_box(settings.jwt_secret).seal(secret), created_at=clock.now()))
    return MintedWebhookToken(token=WebhookTokenRead.model_validate(token), secret=secret)


def list_tokens(session: Session, actor: Actor) -> list[WebhookTokenRead]:
    """The tokens of the actor's projects (the fenced one for a fenced credential), oldest first, without secrets."""
    rows = repository.list_for_projects(session, projects.in_reach(session, actor))
    return [WebhookTokenRead.model_validate(row) for row in rows]


def revoke(session: Session, actor: Actor, token_id: int) -> None:
    """Delete a token; deliveries signed with it are refused from now on. Another project's token is a 404."""
    token = repository.get(session, token_id)
    if token is None or token.project_id not in projects.in_reach(session, actor):
        raise NotFound("webhook token", token_id, code="TOKEN_NOT_FOUND")
    repository.delete(session, token)


# --- deliveries ----------------------------------------------------------------------------------


def _limit(limiter: RateLimiter, key: str, limit: str) -> None:
    verdict = limiter.hit(key, rule(limit))
    if not verdict.allowed:
        raise RateLimited(f"Too many webhook deliveries. Please retry after {verdict.retry_after} seconds.",
                          retry_after=verdict.retry_after, headers=verdict.headers())


def github_signature(secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 of a body: HMAC-SHA256 keyed with the hook's secret, as GitHub computes it."""
    return SIGNATURE_SCHEME + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _secret(settings: Settings, token: WebhookToken | None) -> str:
    """The token's secret, opened; a throwaway one for no token (the comparison is made all the same) or for a
    secret sealed under another installation key (it verifies nothing)."""
    if token is not None:
        with contextlib.suppress(ValueError):
            return _box(settings.jwt_secret).open(token.secret_sealed)
    return secrets.token_urlsafe(SECRET_BYTES)


def _github_token(session: Session, settings: Settings, delivery: Delivery) -> WebhookToken:
    if delivery.token_id is None:
        raise Unauthenticated("Name the webhook token in the hook's URL: /v1/webhooks/github?token_id=<id>.",
                              code="INVALID_SIGNATURE")
    token = repository.get(session, delivery.token_id)
    presented = (delivery.credential or "").strip()
    # the same refusal for an unknown token and a wrong signature, and the comparison made either way
    expected = github_signature(_secret(settings, token), delivery.body)
    if not hmac.compare_digest(expected.encode(), presented.lower().encode()) or token is None:
        raise Unauthenticated(REFUSED, code="INVALID_SIGNATURE")
    return token


def _gitlab_token(session: Session, delivery: Delivery) -> WebhookToken:
    presented = (delivery.credential or "").strip()
    # found by the secret's digest, as API tokens are; then compared in constant time all the same
    token = repository.find_by_hash(session, digest(presented)) if presented.startswith(SECRET_PREFIX) else None
    if token is None or not hmac.compare_digest(token.secret_hash, digest(presented)) or \
            (delivery.token_id is not None and delivery.token_id != token.id):
        raise Unauthenticated(REFUSED, code="INVALID_TOKEN")
    return token


def _parse(schema: type[B], payload: bytes | str, provider: str) -> B:
    try:
        return schema.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise Invalid("body", f"Not a {provider} push payload: {where}: {first['msg']}.") from None


def _github_payload(delivery: Delivery) -> bytes | str:
    # a hook may send application/x-www-form-urlencoded, the JSON then in the `payload` field
    if delivery.content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return delivery.body
    try:
        return urllib.parse.parse_qs(delivery.body.decode(), strict_parsing=True)["payload"][0]
    except (UnicodeDecodeError, ValueError, KeyError):
        raise Invalid("payload", "A form-encoded delivery carries its JSON in the `payload` field.") from None


def _record(session: Session, token: WebhookToken, push: GitPush) -> HookReceipt:
    token.last_used_at = clock.now()
    event = events.record(session, EventKind.GIT_PUSH, project_id=token.project_id,
                          subject=f"webhook-token:{token.id}", payload=push)
    return HookReceipt(status=ReceiptStatus.RECORDED, event=push.provider.value, event_id=event.id,
                       message=f"Push to {push.ref} of {push.repository} recorded.")


def receive_github(session: Session, settings: Settings, limiter: RateLimiter, delivery: Delivery) -> HookReceipt:
    """Verify a GitHub delivery's X-Hub-Signature-256 and record a push (401 unverified; 429 past the limits).

    A ping answers "pong"; other events are verified and ignored.
    """
    _limit(limiter, f"githook:address:{delivery.ip}", settings.git_hook_rate_per_address)
    token = _github_token(session, settings, delivery)
    # counted once verified, so that nobody else's garbage can use a token's deliveries up
    _limit(limiter, f"githook:token:{token.id}", settings.git_hook_rate_per_token)
    event = (delivery.event or "").strip()
    if event == "ping":
        token.last_used_at = clock.now()
        return HookReceipt(status=ReceiptStatus.PONG, event=event, message="pong")
    if event != "push":
        return HookReceipt(status=ReceiptStatus.IGNORED, event=event or "unknown",
                           message="Only push events are recorded; this one was verified and ignored.")
    body = _parse(GitHubPushBody, _github_payload(delivery), "GitHub")
    return _record(session, token, GitPush(
        provider=GitProvider.GITHUB, repository=body.repository.full_name, ref=body.ref, after=body.after,
        pusher=body.pusher.name, delivery=(delivery.delivery_id or "")[:100] or None, webhook_token_id=token.id))


GITLAB_PUSHES = frozenset({"Push Hook", "Tag Push Hook"})


def receive_gitlab(session: Session, settings: Settings, limiter: RateLimiter, delivery: Delivery) -> HookReceipt:
    """Check a GitLab delivery's X-Gitlab-Token against the tokens' secrets and record a push (401 otherwise).

    Push and tag push hooks are recorded; other events are verified and ignored.
    """
    _limit(limiter, f"githook:address:{delivery.ip}", settings.git_hook_rate_per_address)
    token = _gitlab_token(session, delivery)
    _limit(limiter, f"githook:token:{token.id}", settings.git_hook_rate_per_token)
    event = (delivery.event or "").strip()
    if event not in GITLAB_PUSHES:
        return HookReceipt(status=ReceiptStatus.IGNORED, event=event or "unknown",
                           message="Only push and tag push hooks are recorded; this one was verified and ignored.")
    body = _parse(GitLabPushBody, delivery.body, "GitLab")
    return _record(session, token, GitPush(
        provider=GitProvider.GITLAB, repository=body.project.path_with_namespace, ref=body.ref, after=body.after,
        pusher=body.user_username or body.user_name or "unknown",
        delivery=(delivery.delivery_id or "")[:100] or None, webhook_token_id=token.id))
