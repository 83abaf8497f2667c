"""Listing servers when a project has 10,000: p50 and p99 of a 50-server page, on SQLite and PostgreSQL.

Run: `python -m bench.instances_list [--servers 10000] [--requests 200] [--db sqlite,postgresql]`.

For each database (a SQLite file in a temporary directory; a fresh PostgreSQL database created on
CLOUDLET_BENCH_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test, and dropped
afterwards) it migrates, loads the default catalogue, adds a node and a user with a `*` token, and bulk
inserts the servers directly (every tenth held by a running action, each with its subscription), then
times authenticated GETs through the real app (FastAPI's TestClient: every middleware, the token check,
the rate limiter and the read model's statements; no socket) of the first page and of a page deep in
the list, on the CyberPanel (/api/v1/vps) and Shardlyn (/v1/instances) lists, beside GET /api/me (the
cheapest authenticated request, as a baseline of the machine's state). The target is a p99 under 50 ms.
Nothing but 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text, update

from bench.api_me import SECRET_KEY, UNLIMITED, postgres_database
from cloudlet import catalogue_file
from cloudlet.app import build_runtime, create_app
from cloudlet.auth import service as auth
from cloudlet.billing import service as billing
from cloudlet.billing.models import Subscription, SubscriptionStatus
from cloudlet.catalog import service as catalog
from cloudlet.config import Settings
from cloudlet.instances.models import Action, ActionStatus, Instance, InstanceStatus
from cloudlet.kit import clock, migrate
from cloudlet.kit import logging as cloudlet_logging
from cloudlet.nodes import service as nodes
from cloudlet.nodes.schemas import NodeCreate, Resources
from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens import service as tokens
from cloudlet.tokens.schemas import TokenCreate

PAGE = 50
TARGET_P99_MS = 50.0
BATCH = 1000


def seed(runtime: Runtime, count: int) -> str:
    """The catalogue, a node, a user with a `*` token and `count` servers of theirs; the token."""
    settings = runtime.settings
    with runtime.db.session() as session:
        catalogue_file.seed_default(session)
        plan = catalog.list_plans(session)[0]
        region = next(r for r in catalog.list_regions(session) if r.code in plan.regions)
        template = catalog.list_templates(session)[0]
        node = nodes.create_node(session, NodeCreate(name="hv1", uri="qemu+ssh://hv1.example.net/system",
                                                     region=region.code,
                                                     capacity=Resources(vcpu=100_000, memory_mib=10**8,
                                                                        disk_gib=10**7)))
        user = auth.create_user(session, settings, email="bench@example.com", password="bench-password-123")
        minted = tokens.mint(session, user_id=user.id, project_id=None, data=TokenCreate(name="bench"),
                             caller_abilities=["*"], default_per_minute=UNLIMITED, default_per_hour=UNLIMITED)
        project_id = user.personal_project_id
        assert project_id is not None  # every user is made with a personal project
        wallet = billing.wallet_of(session, settings, project_id)
    now = clock.now()
    for start in range(0, count, BATCH):
        numbers = range(start, min(count, start + BATCH))
        uuids = {n: str(uuid.uuid4()) for n in numbers}
        with runtime.db.session() as session:
            session.execute(insert(Instance), [{
                "uuid": uuids[n], "project_id": project_id, "created_by": user.id, "name": f"web-{n}",
                "hostname": f"web-{n}.example.com", "plan_id": plan.id, "region_id": region.id,
                "template_id": template.id, "os_name": template.name, "image": "tiny", "billing_cycle": "monthly",
                "vcpus": plan.vcpu, "memory_mib": plan.ram_mb, "disk_gib": plan.disk_gb,
                "guest_name": f"i{uuids[n].replace('-', '')[:15]}", "node_id": node.id,
                "ipv4": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", "ipv6": None, "ssh_keys": [],
                "status": InstanceStatus.RUNNING, "status_reason": "", "created_at": now, "updated_at": now,
                "provisioned_at": now} for n in numbers])
            session.execute(insert(Subscription), [{
                "project_id": project_id, "wallet_id": wallet.id, "reference": uuids[n], "plan_id": plan.id,
                "cycle": "monthly", "months": 1, "price_cents": plan.monthly_price_cents, "anchor_at": now,
                "started_at": now, "period_start": now, "billed_till": now + timedelta(days=30),
                "paid_cents": plan.monthly_price_cents, "status": SubscriptionStatus.ACTIVE, "created_at": now,
                "updated_at": now} for n in numbers])
            held = [uuids[n] for n in numbers if n % 10 == 0]  # every tenth server is held by a running action
            for instance_id in session.scalars(select(Instance.id).where(Instance.uuid.in_(held))):
                action_id = session.scalar(insert(Action).values(
                    instance_id=instance_id, command="restart", status=ActionStatus.RUNNING, progress=40,
                    current_task="start_vm", workflow_id=f"bench-{uuid.uuid4().hex}", params={},
                    started_at=now).returning(Action.id))
                session.execute(update(Instance).where(Instance.id == instance_id).values(locked_action_id=action_id))
    return minted.plaintext


def timed(client: TestClient, path: str, token: str, requests: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds of `requests` GETs of path, after a few to warm up."""
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(5):
        client.get(path, headers=headers).raise_for_status()
    took = []
    for _ in range(requests):
        began = time.perf_counter()
        answer = client.get(path, headers=headers)
        took.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
    cuts = statistics.quantiles(took, n=100, method="inclusive")
    return cuts[49], cuts[98]


@contextmanager
def database(kind: str, data_dir: Path) -> Iterator[str | None]:
    """The database URL of one run (None for SQLite in the data directory, or when PostgreSQL is absent)."""
    if kind == "postgresql":
        with postgres_database() as url:
            yield url if url is not None else "absent"
    else:
        with nullcontext():
            yield None


def run(kind: str, count: int, requests: int) -> None:
    """Seed one database and print the list's latencies."""
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        if url == "absent":
            return
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=url, secret_key=SECRET_KEY,
                            argon2_time_cost=1, argon2_memory_kib=1024, log_level="warning")
        runtime = build_runtime(settings)
        try:
            migrate.upgrade(runtime.db.engine)
            began = time.perf_counter()
            token = seed(runtime, count)
            if runtime.db.engine.dialect.name == "postgresql":
                # what autovacuum does soon after a bulk load; without statistics the planner guesses
                with runtime.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("VACUUM ANALYZE"))
            print(f"  {kind}: {count} servers inserted in {time.perf_counter() - began:.1f} s")
            with TestClient(create_app(runtime=runtime)) as client:
                # the cheapest authenticated GET, timed alongside: what any request costs here and now
                p50, p99 = timed(client, "/api/me", token, requests)
                print(f"  {kind:<10} GET {'/api/me (baseline)':<40} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms", flush=True)
                for path in (f"/api/v1/vps?limit={PAGE}", f"/api/v1/vps?limit={PAGE}&offset={count // 2}",
                             f"/v1/instances?limit={PAGE}", f"/v1/instances?limit={PAGE}&offset={count // 2}"):
                    p50, p99 = timed(client, path, token, requests)
                    verdict = "ok" if p99 < TARGET_P99_MS else f"over the {TARGET_P99_MS:.0f} ms target"
                    print(f"  {kind:<10} GET {path:<40} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  ({verdict})",
                          flush=True)
        finally:
            runtime.mailer.close()
            runtime.db.dispose()


def main(argv: list[str] | None = None) -> None:
    """Parse the options and run each database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db", default="sqlite,postgresql")
    options = parser.parse_args(argv if argv is not None else [])
    cloudlet_logging.configure("warning")  # a line per request would cost more than some requests
    for kind in options.db.split(","):
        run(kind.strip(), options.servers, options.requests)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
