"""Shardlyn's settings, SSH keys, webhook tokens and inbound git webhooks, on both engines.

Deliveries are signed the way GitHub and GitLab sign them: X-Hub-Signature-256 is HMAC-SHA256 of the raw body
keyed with the token's secret (the plaintext, as GitHub holds it), X-Gitlab-Token is the secret itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from typing import Any

import httpx
import pytest

from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind, EventRead
from cloudlet.instances import repository as instance_repository
from cloudlet.kit.ids import digest
from cloudlet.surfaces.deps import Runtime
from tests.cloud import Cloud
from tests.conftest import Api
from tests.helpers import Person, make_user, mint_token
from tests.integration.test_instances import order

LAPTOP = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFyfX8gCdmziAXz02vfIYJ2bFuh8UgJQEUWVSaU87qfz laptop@example"
CI = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHte2oNpkcmKkOZCCU1sPxgJ9MY4KA8VFRGCSmAvNApz ci@example"
AFTER = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
PER_TOKEN = 10  # deliveries a minute per token, lowered so the limit can be reached


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"git_hook_rate_per_token": f"{PER_TOKEN}/minute", "git_hook_rate_per_address": "40/minute"}


def github_push(repository: str = "alice/shop", ref: str = "refs/heads/main") -> bytes:
    """A GitHub push payload (the fields that matter, and some that do not)."""
    return json.dumps({"ref": ref, "before": "0" * 40, "after": AFTER, "created": False, "deleted": False,
                       "repository": {"id": 1296269, "full_name": repository, "name": repository.split("/")[1]},
                       "pusher": {"name": "alice", "email": "alice@example.com"},
                       "head_commit": {"id": AFTER, "message": "Fix the cart"}}).encode()


def gitlab_push(ref: str = "refs/heads/main") -> bytes:
    """A GitLab Push Hook payload."""
    return json.dumps({"object_kind": "push", "ref": ref, "before": "0" * 40, "after": AFTER,
                       "user_name": "Alice", "user_username": "alice",
                       "project": {"id": 15, "path_with_namespace": "alice/shop"}}).encode()


def altered(secret: str) -> str:
    """The secret with its last character changed."""
    return secret[:-1] + ("1" if secret.endswith("0") else "0")


def sign(secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 exactly as GitHub computes it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def to_github(api: Api, token_id: str | int, body: bytes, signature: str, event: str = "push",
              content_type: str = "application/json") -> httpx.Response:
    """Deliver to /v1/webhooks/github as GitHub does: no credential, the token named in the URL."""
    return api.as_(None).post(f"/v1/webhooks/github?token_id={token_id}", content=body, headers={
        "Content-Type": content_type, "X-Hub-Signature-256": signature, "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "User-Agent": "GitHub-Hookshot/044aadd"})


def to_gitlab(api: Api, secret: str, body: bytes, event: str = "Push Hook") -> httpx.Response:
    """Deliver to /v1/webhooks/gitlab as GitLab does."""
    return api.as_(None).post("/v1/webhooks/gitlab", content=body, headers={
        "Content-Type": "application/json", "X-Gitlab-Token": secret, "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e"})


def pushes(runtime: Runtime, project_id: int) -> list[EventRead]:
    """The git.push events of a project, newest first."""
    with runtime.db.session(write=False) as session:
        return events.recent(session, project_id=project_id, kind=EventKind.GIT_PUSH)


def new_token(api: Api, person: Person, name: str = "shop deploys", **more: Any) -> dict[str, Any]:
    created = api.as_(person.token).post("/v1/webhook-tokens", json={"name": name, **more})
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


# --- settings ------------------------------------------------------------------------------------


def test_settings_start_with_defaults_and_change_only_what_is_given(cloud: Cloud) -> None:
    client = cloud.client()
    first = client.get("/v1/settings")
    assert first.status_code == 200, first.text
    assert first.json() == {"organization_id": str(cloud.customer.project_id), "default_region": None,
                            "timezone": "UTC", "locale": "en", "notify_email": True, "notify_in_app": True,
                            "updated_at": None, "ssh_keys": [], "default_ssh_key": None}
    changed = client.put("/v1/settings", json={"default_region": "dc1", "timezone": "Europe/Paris",
                                               "locale": "fr-FR", "notify_email": False})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["default_region"], body["timezone"], body["locale"]) == ("dc1", "Europe/Paris", "fr-FR")
    assert body["notify_email"] is False and body["notify_in_app"] is True and body["updated_at"]
    again = client.put("/v1/settings", json={"notify_in_app": False})
    assert again.json()["timezone"] == "Europe/Paris" and again.json()["notify_in_app"] is False
    cleared = client.put("/v1/settings", json={"default_region": None})
    assert cleared.json()["default_region"] is None and cleared.json()["locale"] == "fr-FR"
    assert client.get("/v1/settings").json() == cleared.json()


@pytest.mark.parametrize(("change", "words"), [
    ({"timezone": "Mars/Olympus_Mons"}, "time zone"),
    ({"timezone": "../../etc/passwd"}, "time zone"),
    ({"locale": "english please"}, "locale"),
    ({"default_region": "atlantis"}, "atlantis"),
    ({"notify_email": "sometimes"}, "notify_email"),
])
def test_bad_settings_are_refused_and_nothing_changes(api: Api, runtime: Runtime, change: dict[str, Any],
                                                      words: str) -> None:
    alice = make_user(runtime, "alice@example.com")
    client = api.as_(alice.token)
    assert client.put("/v1/settings", json={"timezone": "Asia/Tokyo"}).status_code == 200
    refused = client.put("/v1/settings", json={"locale": "de", **change})
    assert refused.status_code == 400, refused.text  # Shardlyn answers invalid input with a 400
    assert words in refused.json()["error"]
    after = client.get("/v1/settings").json()
    assert after["timezone"] == "Asia/Tokyo" and after["locale"] == "en"


def test_settings_ssh_keys_are_the_keys_of_the_api_and_of_orders(cloud: Cloud) -> None:
    client = cloud.client()
    laptop = client.post("/v1/settings/ssh-keys", json={"name": "laptop", "public_key": LAPTOP})
    assert laptop.status_code == 201, laptop.text
    assert laptop.json()["is_default"] is False and laptop.json()["fingerprint"].startswith("SHA256:")
    ci = client.post("/v1/settings/ssh-keys", json={"name": "ci", "public_key": CI, "is_default": True})
    assert ci.status_code == 201 and ci.json()["is_default"] is True
    # the same key store: /api/ssh-keys lists them, with the default marked
    listed = {k["name"]: k for k in client.get("/api/ssh-keys").json()}
    assert set(listed) == {"laptop", "ci"} and listed["ci"]["is_default"] and not listed["laptop"]["is_default"]
    assert client.post("/v1/settings/ssh-keys", json={"name": "laptop", "public_key": CI}).status_code == 409
    assert client.post("/v1/settings/ssh-keys", json={"name": "other", "public_key": LAPTOP}).status_code == 409
    assert client.post("/v1/settings/ssh-keys", json={"name": "bad", "public_key": "ssh-ed25519 AAAAnot"}
                       ).status_code == 400

    made = client.post("/v1/settings/ssh-keys/laptop/default")
    assert made.status_code == 200 and made.json()["is_default"] is True
    shown = client.get("/v1/settings").json()
    assert shown["default_ssh_key"] == "laptop"
    assert [k["name"] for k in shown["ssh_keys"] if k["is_default"]] == ["laptop"]  # one default at most

    # an order that names no key gets the default one; an order that names one gets only that one
    created = client.post("/api/instances", json=order(cloud))
    assert created.status_code == 201, created.text
    named = client.post("/api/instances", json=order(cloud, name="web-2", hostname="web-2.example.com",
                                                       ssh_key_ids=[ci.json()["id"]]))
    assert named.status_code == 201, named.text
    with cloud.runtime.db.session(write=False) as session:
        built = instance_repository.instance(session, created.json()["id"])
        other = instance_repository.instance(session, named.json()["id"])
        assert built is not None and other is not None
        assert built.ssh_keys == [LAPTOP] and other.ssh_keys == [CI]

    assert client.delete("/v1/settings/ssh-keys/laptop").status_code == 204
    assert client.delete("/v1/settings/ssh-keys/laptop").status_code == 404
    assert client.post("/v1/settings/ssh-keys/laptop/default").status_code == 404
    assert [k["name"] for k in client.get("/api/ssh-keys").json()] == ["ci"]
    assert client.get("/v1/settings").json()["default_ssh_key"] is None


def test_a_name_several_keys_share_is_refused_rather_than_guessed(api: Api, runtime: Runtime) -> None:
    alice = make_user(runtime, "alice@example.com")
    client = api.as_(alice.token)
    for key in (LAPTOP, CI):  # /api/ssh-keys lets names repeat
        assert client.post("/api/ssh-keys", json={"name": "work", "public_key": key}).status_code == 201
    assert client.delete("/v1/settings/ssh-keys/work").status_code == 409
    assert client.post("/v1/settings/ssh-keys/work/default").status_code == 409
    assert len(client.get("/api/ssh-keys").json()) == 2


def test_another_organizations_keys_are_out_of_reach(api: Api, runtime: Runtime) -> None:
    alice, bruno = make_user(runtime, "alice@example.com"), make_user(runtime, "bruno@example.com")
    assert api.as_(alice.token).post("/v1/settings/ssh-keys", json={"name": "laptop", "public_key": LAPTOP}
                                     ).status_code == 201
    stranger = api.as_(bruno.token)
    assert stranger.delete("/v1/settings/ssh-keys/laptop").status_code == 404
    assert stranger.post("/v1/settings/ssh-keys/laptop/default").status_code == 404
    assert stranger.get("/v1/settings").json()["ssh_keys"] == []
    assert len(api.as_(alice.token).get("/v1/settings").json()["ssh_keys"]) == 1


def test_settings_scopes(api: Api, runtime: Runtime) -> None:
    alice = make_user(runtime, "alice@example.com")
    reader = api.as_(mint_token(runtime, alice, "account:read"))
    writer = api.as_(mint_token(runtime, alice, "account:write"))
    assert reader.get("/v1/settings").status_code == 200
    assert reader.put("/v1/settings", json={"locale": "de"}).status_code == 403
    assert reader.post("/v1/settings/ssh-keys", json={"name": "laptop", "public_key": LAPTOP}).status_code == 403
    assert writer.put("/v1/settings", json={"locale": "de"}).status_code == 200
    assert writer.post("/v1/settings/ssh-keys", json={"name": "laptop", "public_key": LAPTOP}).status_code == 201
    # webhook tokens are credentials: like API tokens, they take a full-access credential
    assert writer.get("/v1/webhook-tokens").status_code == 403
    assert writer.post("/v1/webhook-tokens", json={"name": "x"}).status_code == 403
    assert api.as_(None).get("/v1/settings").status_code == 401


# --- webhook tokens ------------------------------------------------------------------------------


def test_a_webhook_token_is_shown_once_listed_masked_and_deleted(api: Api, runtime: Runtime) -> None:
    alice = make_user(runtime, "alice@example.com")
    client = api.as_(alice.token)
    created = new_token(api, alice, purpose="deploy shop from main")
    secret = created["token"]
    assert secret.startswith("whk_") and len(secret) <= 64 and secret.startswith(created["prefix"])
    assert created["organization_id"] == str(alice.project_id) and created["purpose"] == "deploy shop from main"
    assert created["github_url"] == f"http://cloudlet.test/v1/webhooks/github?token_id={created['id']}"
    assert created["gitlab_url"] == "http://cloudlet.test/v1/webhooks/gitlab"
    listed = client.get("/v1/webhook-tokens")
    assert listed.status_code == 200
    (item,) = listed.json()
    assert item["id"] == created["id"] and item["prefix"] == created["prefix"] and item["last_used_at"] is None
    assert "token" not in item and secret not in listed.text
    assert client.post("/v1/webhook-tokens", json={"name": ""}).status_code == 400
    assert client.post("/v1/webhook-tokens", json={"name": "x", "organization_id": "nope"}).status_code == 400

    assert client.delete(f"/v1/webhook-tokens/{created['id']}").status_code == 204
    assert client.get("/v1/webhook-tokens").json() == []
    assert client.delete(f"/v1/webhook-tokens/{created['id']}").status_code == 404
    assert client.delete("/v1/webhook-tokens/not-a-number").status_code == 404
    # a deleted token verifies nothing any more
    assert to_gitlab(api, secret, gitlab_push()).status_code == 401


def test_another_projects_webhook_token_cannot_be_seen_or_deleted(api: Api, runtime: Runtime) -> None:
    alice, bruno = make_user(runtime, "alice@example.com"), make_user(runtime, "bruno@example.com")
    hers = new_token(api, alice)
    stranger = api.as_(bruno.token)
    assert stranger.get("/v1/webhook-tokens").json() == []
    assert stranger.delete(f"/v1/webhook-tokens/{hers['id']}").status_code == 404
    assert stranger.post("/v1/webhook-tokens", json={"name": "x", "organization_id": alice.project_id}
                         ).status_code == 404
    assert [t["id"] for t in api.as_(alice.token).get("/v1/webhook-tokens").json()] == [hers["id"]]


# --- GitHub --------------------------------------------------------------------------------------


def test_a_signed_github_push_is_recorded_as_a_git_push_event(api: Api, runtime: Runtime) -> None:
    alice = make_user(runtime, "alice@example.com")
    token = new_token(api, alice)
    body = github_push()
    reply = to_github(api, token["id"], body, sign(token["token"], body))
    assert reply.status_code == 200, reply.text
    receipt = reply.json()
    assert receipt["status"] == "recorded" and receipt["event"] == "github"
    (event,) = pushes(runtime, alice.project_id)
    assert event.id == receipt["event_id"] and event.subject == f"webhook-token:{token['id']}"
    assert event.payload == {"provider": "github", "repository": "alice/shop", "ref": "refs/heads/main",
                             "after": AFTER, "pusher": "alice", "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                             "webhook_token_id": int(token["id"])}
    listed = api.as_(alice.token).get("/v1/webhook-tokens").json()
    assert listed[0]["last_used_at"] is not None
    # GitHub's other content type: the same JSON in a form's `payload` field, the signature over the form
    form = urllib.parse.urlencode({"payload": github_push(ref="refs/tags/v1.0").decode()}).encode()
    reply = to_github(api, token["id"], form, sign(token["token"], form),
                      content_type="application/x-www-form-urlencoded")
    assert reply.status_code == 200, reply.text
    assert pushes(runtime, alice.project_id)[0].payload["ref"] == "refs/tags/v1.0"


@pytest.mark.parametrize("mangle", ["wrong secret", "other body", "no signature", "sha1 scheme", "other token",
                                    "the stored digest"])
def test_a_github_delivery_with_a_bad_signature_is_401_and_records_nothing(api: Api, runtime: Runtime,
                                                                          mangle: str) -> None:
    alice = make_user(runtime, "alice@example.com")
    token, other = new_token(api, alice), new_token(api, alice, "other")
    body = github_push()
    token_id, signature = token["id"], sign(token["token"], body)
    if mangle == "wrong secret":
        signature = sign(altered(token["token"]), body)
    elif mangle == "other body":
        signature = sign(token["token"], github_push(ref="refs/heads/evil"))
    elif mangle == "no signature":
        signature = ""
    elif mangle == "sha1 scheme":
        signature = "sha1=" + hmac.new(token["token"].encode(), body, hashlib.sha1).hexdigest()
    elif mangle == "other token":
        token_id = other["id"]
    elif mangle == "the stored digest":  # what reading the table gives: not enough to sign
        signature = "sha256=" + hmac.new(bytes.fromhex(digest(token["token"])), body, hashlib.sha256).hexdigest()
    reply = to_github(api, token_id, body, signature)
    assert reply.status_code == 401, reply.text
    assert "signature" in reply.json()["error"]
    assert pushes(runtime, alice.project_id) == []
    assert all(t["last_used_at"] is None for t in api.as_(alice.token).get("/v1/webhook-tokens").json())


def test_github_ping_other_events_unknown_tokens_and_bad_payloads(api: Api, runtime: Runtime) -> None:
    alice = make_user(runtime, "alice@example.com")
    token = new_token(api, alice)
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 30}).encode()
    pong = to_github(api, token["id"], ping, sign(token["token"], ping), event="ping")
    assert pong.status_code == 200 and pong.json()["status"] == "pong"
    assert to_github(api, token["id"], ping, sign("whk_" + "0" * 43, ping), event="ping").status_code == 401
    issue = b'{"action": "opened"}'
    ignored = to_github(api, token["id"], issue, sign(token["token"], issue), event="issues")
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"
    assert to_github(api, 999999, ping, sign(token["token"], ping), event="ping").status_code == 401
    unnamed = api.as_(None).post("/v1/webhooks/github", content=ping, headers={
        "X-Hub-Signature-256": sign(token["token"], ping), "X-GitHub-Event": "ping"})
    assert unnamed.status_code == 401 and "token_id" in unnamed.json()["error"]
    broken = b'{"ref": "refs/heads/main"}'
    refused = to_github(api, token["id"], broken, sign(token["token"], broken))
    assert refused.status_code == 400 and "push payload" in refused.json()["error"]
    assert pushes(runtime, alice.project_id) == []


# --- GitLab --------------------------------------------------------------------------------------


def test_a_gitlab_push_with_the_right_token_is_recorded_and_a_wrong_one_is_401(api: Api, runtime: Runtime) -> None:
    alice = make_user(runtime, "alice@example.com")
    token = new_token(api, alice)
    reply = to_gitlab(api, token["token"], gitlab_push())
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "recorded"
    (event,) = pushes(runtime, alice.project_id)
    assert event.payload == {"provider": "gitlab", "repository": "alice/shop", "ref": "refs/heads/main",
                             "after": AFTER, "pusher": "alice", "delivery": "13792a34-cac6-4fda-95a8-c58e00a3954e",
                             "webhook_token_id": int(token["id"])}
    for wrong in (altered(token["token"]), "", token["prefix"], "not-a-token"):
        assert to_gitlab(api, wrong, gitlab_push()).status_code == 401
    # naming another token than the secret's is refused too
    other = new_token(api, alice, "other")
    named = api.as_(None).post(f"/v1/webhooks/gitlab?token_id={other['id']}", content=gitlab_push(),
                               headers={"X-Gitlab-Token": token["token"], "X-Gitlab-Event": "Push Hook"})
    assert named.status_code == 401
    tag = to_gitlab(api, token["token"], gitlab_push(ref="refs/tags/v2"), event="Tag Push Hook")
    assert tag.status_code == 200 and tag.json()["status"] == "recorded"
    note = to_gitlab(api, token["token"], b'{"object_kind": "note"}', event="Note Hook")
    assert note.status_code == 200 and note.json()["status"] == "ignored"
    assert [e.payload["ref"] for e in pushes(runtime, alice.project_id)] == ["refs/tags/v2", "refs/heads/main"]


def test_deliveries_are_rate_limited_per_token(api: Api, runtime: Runtime) -> None:
    alice = make_user(runtime, "alice@example.com")
    token = new_token(api, alice)
    answers = [to_gitlab(api, token["token"], gitlab_push()).status_code for _ in range(PER_TOKEN + 1)]
    assert answers == [200] * PER_TOKEN + [429]
    assert len(pushes(runtime, alice.project_id)) == PER_TOKEN
