"""The serial log across boots on the Shardlyn surface: logs/history and logs/download show every boot the
node keeps (a restart does not wipe the one before), install-logs only the current one; an administrator,
and only one, clears it all with DELETE logs/clear, which the audit log records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from cloudlet.drivers.base import BOOT_SEPARATOR
from cloudlet.drivers.seed import parse_ready
from tests.cloud import Cloud, HeldDriver, wait_for
from tests.helpers import Person, make_user, mint_token
from tests.integration.test_power import guest_of, numeric_id, running_server, settles_at

ADMIN_ONLY = {"error": "Administrator access is required."}


def history(client: httpx.Client, ident: object) -> dict[str, Any]:
    """The instance's log history as the client sees it."""
    answer = client.get(f"/v1/instances/{ident}/logs/history")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def boots(logs: list[str]) -> tuple[int, list[str]]:
    """(how many boots got their seed applied, how each boot after the first began) in a list of log lines."""
    ready = sum(1 for line in logs if parse_ready(line) is not None)
    return ready, [found.group(1) for found in map(BOOT_SEPARATOR.match, logs) if found]


def restart(cloud: Cloud, uid: str) -> None:
    """Restart the server through Shardlyn's power endpoint and wait until it runs again."""
    answer = cloud.client().post(f"/v1/instances/{uid}/restart")
    assert answer.status_code == 202, answer.text
    settles_at(cloud.client(), uid, "running")


def an_admin(cloud: Cloud) -> Person:
    """An operator, who is no member of the customer's project."""
    return make_user(cloud.runtime, "root@example.com", admin=True)


def test_a_restart_keeps_the_boot_before_it_in_the_history_and_the_download(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    first = history(client, uid)
    assert boots(first["logs"]) == (1, [])
    restart(cloud, uid)

    shown = history(client, uid)
    assert boots(shown["logs"]) == (2, ["rebooted"])
    assert shown["logs"][:len(first["logs"])] == first["logs"]  # the first boot, as it was, comes first
    current = client.get(f"/v1/instances/{uid}/install-logs").json()["logs"]
    assert boots(current) == (1, [])  # install-logs: the current boot only
    separator = next(n for n, line in enumerate(shown["logs"]) if BOOT_SEPARATOR.match(line))
    assert shown["logs"][separator + 1:] == current
    assert shown["total_lines"] == len(shown["logs"]) and shown["truncated"] is False
    assert history(client, numeric_id(cloud, uid)) == shown  # by numeric id too

    download = client.get(f"/v1/instances/{uid}/logs/download")
    assert download.status_code == 200 and download.text.splitlines() == shown["logs"]
    assert download.headers["content-disposition"] == f'attachment; filename="{uid}-serial.log"'
    assert cloud.driver.console_history(guest_of(cloud, uid)).text == download.text  # what the node keeps

    tail = client.get(f"/v1/instances/{uid}/logs/history", params={"lines": 2}).json()
    assert tail["logs"] == shown["logs"][-2:] and tail["total_lines"] == len(shown["logs"]) and tail["truncated"]


def test_only_an_administrator_clears_the_log_and_the_audit_log_says_who(cloud: Cloud) -> None:
    client = cloud.client()
    uid = running_server(cloud)["id"]
    restart(cloud, uid)
    before = history(client, uid)
    assert boots(before["logs"]) == (2, ["rebooted"])

    owner = client.delete(f"/v1/instances/{uid}/logs/clear")
    assert owner.status_code == 403 and owner.json() == ADMIN_ONLY  # the owner, but not an operator
    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "instances:read"))
    assert reader.delete(f"/v1/instances/{uid}/logs/clear").status_code == 403
    intruder = make_user(cloud.runtime, "intruder@example.com")
    stranger = cloud.client(intruder).delete(f"/v1/instances/{uid}/logs/clear")
    assert stranger.status_code == 404 and "error" in stranger.json()  # another tenant learns nothing
    assert history(client, uid) == before  # nothing was cleared by any of them

    admin = an_admin(cloud)
    operator = cloud.client(admin)
    cleared = operator.delete(f"/v1/instances/{uid}/logs/clear")
    assert cleared.status_code == 204 and cleared.content == b""
    assert history(client, uid) == {"instance_id": uid, "logs": [], "total_lines": 0, "truncated": False}
    download = client.get(f"/v1/instances/{uid}/logs/download")
    assert download.status_code == 200 and download.text == ""
    assert client.get(f"/v1/instances/{uid}/install-logs").json()["logs"] == []  # the current boot's log too
    assert operator.delete(f"/v1/instances/{numeric_id(cloud, uid)}/logs/clear").status_code == 204  # idempotent

    def audited() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = operator.get("/v1/admin/audit-logs", params={
            "method": "DELETE", "path": f"/v1/instances/{uid}/logs/clear"}).json()["logs"]
        return found if len(found) == 4 else []  # the owner's, the reader's, the intruder's and the operator's

    entries = wait_for(audited)
    assert [(e["status"], e["actor_user_id"]) for e in reversed(entries)] == [
        (403, cloud.customer.id), (403, cloud.customer.id), (404, intruder.id), (204, admin.id)]
    assert entries[0]["target"] == f"instance_id={uid}"

    restart(cloud, uid)  # a boot after the clear has nothing before it
    assert boots(history(client, uid)["logs"]) == (1, [])


def test_an_unknown_instance_is_404_and_a_busy_one_409_in_shardlyns_format(
        cloud: Cloud, node_driver: Callable[[Any], None]) -> None:
    operator = cloud.client(an_admin(cloud))
    for unknown in ("00000000-0000-0000-0000-000000000000", "999999", "not-an-id"):
        answer = operator.delete(f"/v1/instances/{unknown}/logs/clear")
        assert answer.status_code == 404 and set(answer.json()) == {"error"}, answer.text

    uid = running_server(cloud)["id"]
    held = HeldDriver(cloud.driver, "wait_ready")
    node_driver(held)
    assert cloud.client().post(f"/v1/instances/{uid}/restart").status_code == 202
    assert held.waiting.wait(30)  # the restart waits for the boot's readiness line, which a clear would erase
    busy = operator.delete(f"/v1/instances/{uid}/logs/clear")
    assert busy.status_code == 409 and "in progress" in busy.json()["error"]
    held.gate.set()
    settles_at(cloud.client(), uid, "running")
    assert boots(history(cloud.client(), uid)["logs"]) == (2, ["rebooted"])  # the refusal cleared nothing
    assert operator.delete(f"/v1/instances/{uid}/logs/clear").status_code == 204
    assert history(cloud.client(), uid)["logs"] == []
