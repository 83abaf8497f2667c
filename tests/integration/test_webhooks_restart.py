"""A webhook whose worker is killed between attempts is finished by the next worker, and sent once more only.

Real `cloudlet worker` processes on the test's database: the first makes the first attempt (the
receiver answers 500) and is killed with SIGKILL while it waits to retry; the one started after it
takes the same executor slot, recovers the workflow, waits out the rest of the backoff and delivers.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudlet.surfaces.deps import Runtime
from cloudlet.webhooks.models import DeliveryStatus
from tests.integration.test_webhooks import Receiver, delivery, enqueue, finished, receiver, settings_overrides
from tests.integration.test_worker import wait_for
from tests.integration.test_worker_processes import Cluster, Process

__all__ = ["receiver", "settings_overrides"]  # fixtures shared with test_webhooks

pytestmark = pytest.mark.long(seconds=45)

BACKOFF_SECONDS = 4


class WebhookCluster(Cluster):
    """Worker processes that may send webhooks to loopback, retry after a few seconds, sweep every second."""

    def env(self) -> dict[str, str]:
        """The cluster's environment plus the webhook settings."""
        return {**super().env(), "CLOUDLET_WEBHOOK_ALLOW_PRIVATE": "true",
                "CLOUDLET_WEBHOOK_BACKOFF_SECONDS": str(BACKOFF_SECONDS),
                "CLOUDLET_WEBHOOK_SWEEP_SCHEDULE": "* * * * * *"}

    def worker(self) -> Process:
        """`cloudlet worker`, once it has started."""
        process = self.start(f"worker-{len(self.started)}", "worker")

        def started() -> bool:
            if process.popen.poll() is not None:
                pytest.fail(f"worker exited:\n{process.log.read_text()}")
            return any(e.get("event") == "worker started" for e in process.events())

        wait_for(started, "the worker to start", seconds=30)
        return process


@pytest.fixture
def cluster(runtime: Runtime, database_url: str, tmp_path: Path) -> Iterator[WebhookCluster]:
    """Processes on the test's database, all stopped after the test."""
    made = WebhookCluster(runtime, database_url, tmp_path, [])
    try:
        yield made
    finally:
        for process in made.started:
            process.stop()


def test_a_worker_killed_while_waiting_to_retry_leaves_the_webhook_to_the_next_one(
        cluster: WebhookCluster, receiver: Receiver) -> None:
    runtime = cluster.runtime
    receiver.script = [500]
    first = cluster.worker()
    queued = enqueue(runtime, receiver.url)  # this process runs no worker: the worker's sweep starts it
    wait_for(lambda: delivery(runtime, queued.id).attempts == 1, "the first attempt's 500")
    first.popen.send_signal(signal.SIGKILL)
    assert first.popen.wait(timeout=10) == -signal.SIGKILL
    killed_at = time.monotonic()
    assert len(receiver.requests) == 1 and delivery(runtime, queued.id).status == DeliveryStatus.PENDING
    cluster.worker()
    done = wait_for(lambda: finished(runtime, queued.id), "the delivery by the second worker", seconds=30)
    time.sleep(2.5)  # a few sweeps of the second worker: nothing is sent again
    assert done.status == DeliveryStatus.DELIVERED and done.attempts == 2 and done.last_status_code == 200
    assert len(receiver.requests) == 2
    first_try, retry = receiver.requests
    assert retry.body == first_try.body and retry.headers["x-webhook-delivery"] == str(queued.id)
    assert retry.headers["x-webhook-attempt"] == "2"
    # the durable sleep kept its deadline across the crash: the retry waited out the backoff, no more
    assert retry.at - first_try.at >= BACKOFF_SECONDS * 0.9
    assert retry.at >= killed_at
