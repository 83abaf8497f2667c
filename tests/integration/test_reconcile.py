"""The reconciler compares each node's guests with the database: it repairs what drifted, reports
what nobody owns (never destroying it), and marks the instances of a silent node unknown."""

from __future__ import annotations

from cloudlet.drivers.base import GuestSpec, NodeUnreachable
from cloudlet.events import service as events
from cloudlet.events.schemas import EventKind
from cloudlet.instances import workflows
from tests.cloud import Cloud
from tests.integration.test_instances import order, running


def status(cloud: Cloud, instance_id: str) -> tuple[str, str]:
    """The instance's status and reason as the API shows them."""
    body = cloud.client().get(f"/api/instances/{instance_id}").json()
    return body["status"], body["status_reason"]


def test_a_guest_stopped_behind_our_back_shows_stopped_and_one_started_shows_running(cloud: Cloud) -> None:
    body = cloud.client().post("/api/instances", json=order(cloud)).json()
    running(cloud.client(), body["id"])
    (guest,) = cloud.driver.list_guests()
    cloud.driver.poweroff(guest.name)
    (report,) = workflows.reconcile_nodes(cloud.runtime.db, cloud.runtime.drivers)
    assert [(d.expected, d.found) for d in report.drifts] == [("running", "stopped")]
    assert status(cloud, body["id"]) == ("stopped", "stopped by itself (seen by the reconciler)")
    assert workflows.reconcile_nodes(cloud.runtime.db, cloud.runtime.drivers)[0].drifts == []  # nothing new to say
    cloud.driver.start(guest.name)
    workflows.reconcile_nodes(cloud.runtime.db, cloud.runtime.drivers)
    assert status(cloud, body["id"])[0] == "running"
    with cloud.runtime.db.session(write=False) as session:
        drifted = events.recent(session, kind=EventKind.INSTANCE_DRIFTED)
    assert [(e.payload["expected"], e.payload["found"]) for e in drifted] == [("stopped", "running"),
                                                                             ("running", "stopped")]


def test_a_guest_nobody_owns_is_reported_once_and_left_alone(cloud: Cloud) -> None:
    cloud.driver.create_guest(GuestSpec(name="rogue", image="tiny", vcpus=1, memory_mib=128, disk_gib=1,
                                        hostname="rogue"))
    for _ in range(2):
        (report,) = workflows.reconcile_nodes(cloud.runtime.db, cloud.runtime.drivers)
        assert report.unknown_guests == ["rogue"]
    assert [g.name for g in cloud.driver.list_guests()] == ["rogue"]
    with cloud.runtime.db.session(write=False) as session:
        reported = events.recent(session, kind=EventKind.NODE_UNKNOWN_GUEST)
    assert len(reported) == 1 and reported[0].payload["guest"] == "rogue"


def test_a_silent_node_makes_its_instances_unknown_until_it_answers(cloud: Cloud) -> None:
    body = cloud.client().post("/api/instances", json=order(cloud)).json()
    running(cloud.client(), body["id"])

    def silent(uri: str) -> None:
        raise NodeUnreachable(f"{uri}: connection refused")

    # The node stays silent while it is looked at: the scheduled reconcile may run at any moment, and
    # with the node answering again it would rightly bring the instance back to running.
    previous = cloud.runtime.drivers.use(silent)  # type: ignore[arg-type]
    try:
        (report,) = workflows.reconcile_nodes(cloud.runtime.db, cloud.runtime.drivers)
        assert not report.reachable
        state, reason = status(cloud, body["id"])
        assert state == "unknown" and "connection refused" in reason
        assert cloud.client().get(f"/api/instances/{body['id']}").json()["allowed_actions"] == ["delete"]
    finally:
        cloud.runtime.drivers.use(previous)
    workflows.reconcile_nodes(cloud.runtime.db, cloud.runtime.drivers)
    assert status(cloud, body["id"]) == ("running", "")
