"""The worker judges alert rules on its schedule (CLOUDLET_ALERT_EVALUATION_SCHEDULE), on both engines: a rule whose
condition holds gets its alert without anyone calling the evaluation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud import Cloud, wait_for
from tests.helpers import make_user


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """A round every two seconds, so the test waits on the alert rather than on the default 30 s."""
    return {"alert_evaluation_schedule": "*/2 * * * * *"}


def test_the_worker_opens_an_alert_on_its_schedule(cloud: Cloud) -> None:
    boss = cloud.api.as_(make_user(cloud.runtime, "admin@example.com", admin=True).token)
    made = boss.post("/v1/alerts/rules", json={
        "name": "Node up", "target_type": "node", "target_id": str(cloud.node_id), "metric": "node_down",
        "operator": "lt", "threshold": 1, "duration_seconds": 0, "severity": "info", "notify_in_app": True,
        "notify_email": False, "cooldown_seconds": 0})
    assert made.status_code == 201, made.text
    found = wait_for(lambda: boss.get("/v1/alerts").json()["alerts"], timeout=30)
    assert [(a["rule_id"], a["status"], a["target_name"], a["value"]) for a in found] == [
        (made.json()["id"], "open", "hv1", 0.0)]
    assert boss.get("/v1/alerts/unread-count").json() == {"count": 1}
