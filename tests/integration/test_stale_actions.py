"""Operators end a stale action: `POST /api/admin/actions/{id}/fail` and `cloudlet actions fail ID`.

Ending one cancels its DBOS workflow, runs its procedure's clean-up, records the failure with the reason and
frees the server; an action that has already ended is 409, an unknown one 404, and only administrators may.
The worker is the real one; the stale action is a boot whose driver call the test holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from dbos import DBOS
from typer.testing import CliRunner

from cloudlet.app import build_runtime
from cloudlet.cli import actions as actions_cli
from cloudlet.cli.main import app
from cloudlet.config import Settings
from cloudlet.instances import repository
from cloudlet.surfaces.deps import Runtime
from tests.cloud import Cloud, HeldDriver, wait_for
from tests.helpers import Person, make_user
from tests.integration.test_instances import order, running


@pytest.fixture
def admin(cloud: Cloud) -> Person:
    """An operator of the cloud."""
    return make_user(cloud.runtime, "ops@example.com", admin=True)


def stuck_boot(cloud: Cloud, node_driver: Callable[[Any], None]) -> tuple[dict[str, Any], int, HeldDriver]:
    """A stopped server of the customer's whose boot hangs in its first driver call: (server, action id, driver)."""
    client = cloud.client()
    server = client.post("/api/instances", json=order(cloud)).json()
    running(client, server["id"])
    off = client.post(f"/api/instances/{server['id']}/power/poweroff").json()["action"]["id"]
    wait_for(lambda: client.get(f"/api/instances/{server['id']}/actions/{off}").json()["status"] != "running")
    held = HeldDriver(cloud.driver, "start")
    node_driver(held)
    boot = client.post(f"/api/instances/{server['id']}/power/boot")
    assert boot.status_code == 200, boot.text
    assert held.waiting.wait(15)
    return server, int(boot.json()["action"]["id"]), held


def workflow_of(cloud: Cloud, action_id: int) -> str:
    """The DBOS workflow id of an action."""
    with cloud.runtime.db.session(write=False) as session:
        action = repository.action(session, action_id)
        assert action is not None
        return action.workflow_id


def test_an_operator_ends_a_stale_action_and_the_server_is_free_again(
        cloud: Cloud, admin: Person, node_driver: Callable[[Any], None]) -> None:
    server, action_id, held = stuck_boot(cloud, node_driver)
    ops, client = cloud.api.as_(admin.token), cloud.client()
    listed = ops.get("/api/admin/actions", params={"running": "true"})
    assert listed.status_code == 200, listed.text
    assert [(a["id"], a["command"], a["instance_uuid"]) for a in listed.json()] == [(action_id, "boot", server["id"])]

    refused = client.post(f"/api/admin/actions/{action_id}/fail", json={"reason": "mine"})
    assert refused.status_code == 403 and refused.json()["code"] == "ADMIN_REQUIRED"
    assert client.get(f"/api/instances/{server['id']}").json()["locked"] is True

    ended = ops.post(f"/api/admin/actions/{action_id}/fail", json={"reason": "node hv1 stopped answering"})
    assert ended.status_code == 202, ended.text
    assert ended.json()["id"] == action_id and ended.json()["status"] == "running"  # the action as it was
    (shown,) = ops.get("/api/admin/actions", params={"running": "false"}).json()[:1]
    assert shown["id"] == action_id and shown["status"] == "error"  # ended once the answer was sent
    assert shown["error"] == "ended by an operator: node hv1 stopped answering"
    assert DBOS.get_workflow_status(workflow_of(cloud, action_id)).status == "CANCELLED"  # type: ignore[union-attr]
    detail = client.get(f"/api/instances/{server['id']}").json()
    assert detail["locked"] is False and detail["status"] == "stopped"  # the clean-up synced it from the node
    assert "boot" in detail["allowed_actions"]
    action = client.get(f"/api/instances/{server['id']}/actions/{action_id}").json()
    assert action["status"] == "error" and {t["name"]: t["status"] for t in action["tasks"]}["boot_guest"] == "failed"
    assert ops.get("/api/admin/actions", params={"running": "true"}).json() == []

    again = ops.post(f"/api/admin/actions/{action_id}/fail")
    assert again.status_code == 409 and again.json()["code"] == "ACTION_ENDED"
    assert ops.post("/api/admin/actions/99999/fail").status_code == 404
    assert ops.post("/api/admin/actions/99999999999999999999/fail").status_code == 404  # names no action
    assert ops.post(f"/api/admin/actions/{action_id}/fail", json={"reason": "x" * 501}).status_code == 422

    node_driver(cloud.driver)  # a new action is accepted and carried out
    boot = client.post(f"/api/instances/{server['id']}/power/boot")
    assert boot.status_code == 200, boot.text
    wait_for(lambda: client.get(f"/api/instances/{server['id']}").json()["status"] == "running")
    held.gate.set()  # the abandoned call returns at last: the ended action records nothing more
    time.sleep(1)  # nothing to wait for but the abandoned thread's last write, which must not come
    late = client.get(f"/api/instances/{server['id']}/actions/{action_id}").json()
    assert late["status"] == "error" and late["error"] == action["error"]


def cli(cloud: Cloud, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> Result:
    """Run `cloudlet ARGS` on the test's database (in this process; the command's runtime reaches the fake node)."""
    settings = cloud.runtime.settings

    def on_the_fake_node(chosen: Settings) -> Runtime:
        made = build_runtime(chosen)
        made.drivers = cloud.runtime.drivers
        return made

    monkeypatch.setattr(actions_cli, "build_runtime", on_the_fake_node)
    monkeypatch.chdir(tmp_path)  # no .env of the working tree
    monkeypatch.setenv("CLOUDLET_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("CLOUDLET_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CLOUDLET_SECRET_KEY", settings.jwt_secret)
    return CliRunner().invoke(app, list(args))


def rows(result: Result) -> list[list[str]]:
    """The tab-separated lines a command printed (the worker's log lines in this process aside)."""
    return [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]


def test_the_cloudlet_command_lists_and_ends_a_stale_action(
        cloud: Cloud, node_driver: Callable[[Any], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, action_id, _held = stuck_boot(cloud, node_driver)
    listed = cli(cloud, monkeypatch, tmp_path, "actions", "list", "--running")
    assert listed.exit_code == 0, listed.output
    (line,) = rows(listed)
    assert line[:5] == [str(action_id), "running", "boot", server["id"], "boot_guest"]

    ended = cli(cloud, monkeypatch, tmp_path, "actions", "fail", str(action_id), "--reason", "the node is gone")
    assert ended.exit_code == 0, ended.output
    assert "ended: ended by an operator: the node is gone" in ended.stdout
    assert DBOS.get_workflow_status(workflow_of(cloud, action_id)).status == "CANCELLED"  # type: ignore[union-attr]
    detail = cloud.client().get(f"/api/instances/{server['id']}").json()
    assert detail["locked"] is False and detail["status"] == "stopped"
    assert rows(cli(cloud, monkeypatch, tmp_path, "actions", "list", "--running")) == []

    again = cli(cloud, monkeypatch, tmp_path, "actions", "fail", str(action_id))
    assert again.exit_code == 1 and "has already ended (error)" in again.output


class TestFromAProcessWithoutAWorker:
    """`cloudlet actions fail` run as its own process, as an operator does: it cancels the workflow through
    the system database (DBOSClient), not through a worker of its own."""

    @pytest.fixture
    def node_uri(self) -> str:
        # this machine's libvirtd, which has no such guest (or, without libvirtd, no answer): either way the
        # command's clean-up learns nothing, and the failure is recorded all the same; nothing leaves the host
        return "qemu:///system"

    def test_the_command_ends_the_action_of_a_worker_in_another_process(
            self, cloud: Cloud, node_driver: Callable[[Any], None], tmp_path: Path) -> None:
        server, action_id, _held = stuck_boot(cloud, node_driver)
        settings = cloud.runtime.settings
        env = {**os.environ, "CLOUDLET_DATABASE_URL": settings.effective_database_url,
               "CLOUDLET_DATA_DIR": str(settings.data_dir), "CLOUDLET_SECRET_KEY": settings.jwt_secret}
        command = [str(Path(sys.executable).parent / "cloudlet"), "actions", "fail", str(action_id),
                   "--reason", "hv1 is gone"]
        ended = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                               check=False)
        assert ended.returncode == 0, ended.stderr
        assert "ended: ended by an operator: hv1 is gone" in ended.stdout
        assert DBOS.get_workflow_status(workflow_of(cloud, action_id)).status == "CANCELLED"  # type: ignore[union-attr]
        detail = cloud.client().get(f"/api/instances/{server['id']}").json()
        assert detail["locked"] is False, detail
        action = cloud.client().get(f"/api/instances/{server['id']}/actions/{action_id}").json()
        assert action["status"] == "error" and action["error"] == "ended by an operator: hv1 is gone"
