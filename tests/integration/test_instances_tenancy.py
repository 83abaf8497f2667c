"""The cross-tenant matrix for instances: every instance endpoint of every surface, aimed at another
project's instance (by its public id and by its numeric id), answers 404 and changes nothing.

Routes are found in the app, so an endpoint added later is walked too; a body is sent where the
endpoint needs one to get past validation, so the answer comes from the tenancy check itself.
"""

from __future__ import annotations

import re
from typing import Any

from cloudlet.app import create_app
from tests.cloud import Cloud
from tests.helpers import make_user
from tests.integration.test_instances import order, running

# the path parameter that names an instance, per surface prefix
INSTANCE_PATHS = re.compile(r"^(/api/instances/\{instance_id\}|/api/v1/vps/\{vps_id\}|/v1/vps/\{vps_id\}"
                            r"|/v1/instances/\{instance_id\}|/v1/workloads/\{workload_id\})")
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("DELETE", "/api/instances/{instance_id}"): {"mode": "immediate"},
    ("PUT", "/v1/instances/{instance_id}"): {"name": "taken-over"},
    ("POST", "/api/instances/{instance_id}/upgrade"): {"package_id": 1, "reboot": False},
    ("POST", "/api/instances/{instance_id}/reinstall"): {"os_template_id": 1, "os_name": "x"},
    ("POST", "/api/v1/vps/{vps_id}/snapshots/create"): {"name": "snap_1"},
    ("POST", "/api/v1/vps/{vps_id}/reinstall"): {"template_id": 1},
    ("POST", "/api/v1/vps/{vps_id}/upgrade"): {"plan_id": 1, "reboot": False},
    ("POST", "/api/instances/{instance_id}/snapshots"): {"name": "snap_1"},
    ("PUT", "/v1/instances/{instance_id}/files/content"): {"path": "/etc/motd", "content": "taken over"},
    ("POST", "/v1/instances/{instance_id}/files/mkdir"): {"path": "/srv/x"},
    ("POST", "/v1/instances/{instance_id}/files/move"): {"from": "/etc/motd", "to": "/etc/motd.old"},
    ("POST", "/api/instances/{instance_id}/agent/chat"): {"message": "take it over"},
    ("POST", "/api/instances/{instance_id}/agent/conversations/{conversation_id}/approve"): {"tool_call_id": "c1"},
    ("POST", "/api/instances/{instance_id}/agent/telegram"): {"telegram_chat_id": "42-aaaaaaaaaaaa"},
}
QUERIES: dict[str, dict[str, str]] = {"/files": {"path": "/etc/motd"}}  # endpoints that need a path get one
UPLOADS = {("POST", "/v1/instances/{instance_id}/files/upload")}  # a multipart body


def instance_routes(cloud: Cloud) -> list[tuple[str, str]]:
    """(method, path template) of every HTTP endpoint that addresses one instance (from the OpenAPI document)."""
    paths = create_app(runtime=cloud.runtime).openapi()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() if INSTANCE_PATHS.match(path)
            for method in operations]


OTHER_PARAMETERS = {"action": "shutdown"}  # any other path parameter is an id: 1


def fill(template: str, ident: str) -> str:
    """The path with every path parameter set: the instance's id, and a valid value for any other."""
    path = INSTANCE_PATHS.sub(lambda m: re.sub(r"\{[a-z_]+\}", ident, m.group(0)), template)
    return re.sub(r"\{([a-z_]+)\}", lambda m: OTHER_PARAMETERS.get(m.group(1), "1"), path)


def test_another_projects_instance_is_404_on_every_endpoint_of_every_surface(cloud: Cloud) -> None:
    owner = cloud.client()
    body = owner.post("/api/instances", json=order(cloud)).json()
    running(owner, body["id"])
    before = owner.get(f"/api/instances/{body['id']}").json()
    numeric = owner.get("/api/v1/vps").json()["data"]["instances"][0]["id"]
    intruder = make_user(cloud.runtime, "intruder@example.com")
    cloud.credit(intruder, 10_000)
    other = cloud.client(intruder)
    routes = instance_routes(cloud)
    for prefix in ("/api/instances/", "/api/v1/vps/", "/v1/vps/", "/v1/instances/", "/v1/workloads/"):
        assert any(path.startswith(prefix) for _, path in routes), f"no {prefix} endpoint was found: {routes}"
    leaks = []
    for method, template in routes:
        for ident in (body["id"], str(numeric)):
            params = next((q for part, q in QUERIES.items() if part in template), None)
            if (method, template) in UPLOADS:
                answer = other.post(fill(template, ident), files=[("files", ("x", b"x", "text/plain"))])
            else:
                answer = other.request(method, fill(template, ident), json=BODIES.get((method, template)),
                                       params=params)
            # 426: the HTTP face of a websocket endpoint, which answers so before reading any instance
            # (the websockets themselves refuse other tenants: tests/integration/test_console.py)
            if answer.status_code not in (404, 426):
                leaks.append(f"{method} {template} with {ident}: {answer.status_code} {answer.text[:200]}")
    assert leaks == [], "\n".join(leaks)
    after = owner.get(f"/api/instances/{body['id']}").json()
    assert {k: v for k, v in after.items() if k != "vf_remote_state"} == {
        k: v for k, v in before.items() if k != "vf_remote_state"}
    assert len(cloud.driver.list_guests()) == 1
