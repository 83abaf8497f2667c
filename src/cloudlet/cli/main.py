"""The `cloudlet` command: run the server, migrate, and look into the mail outbox."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
from typing import Any

import structlog
import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from cloudlet.app import build_runtime, create_app, create_worker
from cloudlet.cli import actions as actions_cli
from cloudlet.cli import catalog as catalog_cli
from cloudlet.cli import demo as demo_cli
from cloudlet.cli import images as images_cli
from cloudlet.cli import node as node_cli
from cloudlet.cli.wallet import billing_app, wallet_app
from cloudlet.config import Settings
from cloudlet.edge import push as edge_push
from cloudlet.edge import workflows as edge_workflows
from cloudlet.images import service as images
from cloudlet.kit import logging as cloudlet_logging
from cloudlet.kit import migrate as migrations
from cloudlet.mail import service as mail
from cloudlet.nodes import service as nodes
from cloudlet.nodes import workflows as node_workflows

log = structlog.get_logger(__name__)
app = typer.Typer(help="Cloudlet: a self-hosted VPS cloud.", no_args_is_help=True)
mail_app = typer.Typer(help="Outgoing mail.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")
app.add_typer(wallet_app, name="wallet"); app.add_typer(billing_app, name="billing")  # noqa: E702
app.add_typer(catalog_cli.app, name="catalog")
app.add_typer(actions_cli.app, name="actions")
app.add_typer(node_cli.app, name="node"); app.add_typer(images_cli.app, name="images")  # noqa: E702
app.command("demo")(demo_cli.demo)


def _settings() -> Settings:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


HostOption = typer.Option(None, help="Address to listen on (default CLOUDLET_HOST or 127.0.0.1).")
PortOption = typer.Option(None, help="Port to listen on (default CLOUDLET_PORT or 8080).")
ProcessesOption = typer.Option(1, help="Server processes (share the database; use Redis for rate limits).")


@app.command()
def serve(
    host: str | None = HostOption,
    port: int | None = PortOption,
    workers: int = ProcessesOption,
    with_worker: bool = typer.Option(True, "--worker/--no-worker",
                                     help="Run the durable-workflow worker in each server process (default)."),
) -> None:
    """Migrate the database, then serve every API surface (and run the worker alongside)."""
    _serve(host, port, workers, with_worker=with_worker)


@app.command()
def api(host: str | None = HostOption, port: int | None = PortOption, workers: int = ProcessesOption) -> None:
    """Serve the API without a worker (run `cloudlet worker` beside it, several of each on PostgreSQL)."""
    _serve(host, port, workers, with_worker=False)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves Cloudlet, whatever the number of processes."""
    return {
        "log_level": settings.log_level,
        "access_log": False,
        "log_config": None,  # uvicorn's records go through kit/logging's root handler: bounded, no locals
        # Uvicorn would believe X-Forwarded-For from 127.0.0.1 and rewrite the client address before we
        # see it; the address comes from the socket, or from CLOUDLET_TRUSTED_PROXIES (surfaces/deps.py).
        "proxy_headers": False,
        "server_header": False,  # no `server: uvicorn` telling a prober what to aim at
        # A spawned process imports all of Cloudlet before it answers uvicorn's first health check; on a
        # busy host that takes more than uvicorn's 5 s, and the process was killed and spawned again forever.
        "timeout_worker_healthcheck": 60,
    }


def _serve(host: str | None, port: int | None, workers: int, *, with_worker: bool) -> None:
    settings = _settings()
    cloudlet_logging.configure(settings.log_level, json=settings.log_json)
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.db.engine)
    catalog_cli.seed_default(runtime.db)  # a new installation can sell something at once
    with runtime.db.session() as session:
        images.link_default_templates(session)  # the tiny image, once built, is what the default template boots
        local = nodes.libvirt_prepared(settings)  # `cloudlet node prepare` ran: this machine is the first node
        if local:
            nodes.ensure_local_node(session, settings)
    if local:  # a first heartbeat now, so the node takes servers at once rather than at the first tick
        node_workflows.heartbeat_all(runtime.db, settings, runtime.drivers)
    settings.jwt_secret  # noqa: B018  # create the signing key before workers fork
    bind_host, bind_port = host or settings.host, port or settings.port
    edge = edge_push.serve(runtime.db, settings) if settings.edge_serve else None
    try:
        if workers > 1:  # each process launches its own worker; a cron tick still runs once (see cloudlet.worker)
            factory = "cloudlet.app:create_app_with_worker" if with_worker else "cloudlet.app:create_api_app"
            uvicorn.run(factory, factory=True, host=bind_host, port=bind_port, workers=workers,
                        **uvicorn_options(settings))
        else:
            embedded = create_worker(runtime=runtime) if with_worker else None
            uvicorn.run(create_app(settings, runtime, worker=embedded), host=bind_host, port=bind_port,
                        **uvicorn_options(settings))
    finally:
        if edge is not None:
            edge.stop()


@app.command()
def worker() -> None:
    """Migrate the database, then run only the durable-workflow worker until SIGINT or SIGTERM.

    Start more of them, on this host or others sharing PostgreSQL, to spread the work.
    """
    settings = _settings()
    cloudlet_logging.configure(settings.log_level, json=settings.log_json)
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.db.engine)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with create_worker(runtime=runtime):
        stop.wait()
        _exit_by(WORKER_STOP_SECONDS)


WORKER_STOP_SECONDS = 20.0


def _exit_by(seconds: float) -> None:
    """Make sure the process ends within seconds of now: a workflow step stuck on a node or the database must not
    hold a stopping worker (DBOS's stop and Python's exit both wait for running steps); what it left is recovered
    by the next start, as after a crash.

    A timer thread says so and leaves, touching no lock (a logging handler's may be held by the thread that is
    stuck: in CI a worker once stayed past its timer, silent); and the kernel's alarm, whose default action ends
    the process, stands behind it should no Python thread get to run at all."""
    def leave() -> None:
        os.write(2, f"worker still stopping after {seconds:g} s; exiting now (its running workflows are "
                    "recovered at the next start)\n".encode())
        os._exit(0)

    timer = threading.Timer(seconds, leave)
    timer.daemon = True
    timer.start()
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(math.ceil(seconds) + 5)


@app.command()
def edge(every: float = typer.Option(10.0, "--every", min=1.0, help="Seconds between two readings of the "
                                     "database (configuration) and of the edge's logs (traffic).")) -> None:
    """Run only the WAF edge (nginx with ModSecurity and the CRS), its configuration read from the database,
    until SIGINT or SIGTERM: the edge of an installation whose API runs without it (`cloudlet api` and `cloudlet
    worker`, or CLOUDLET_EDGE_SERVE=false), or another edge machine sharing its database and secret key."""
    settings = _settings()
    cloudlet_logging.configure(settings.log_level, json=settings.log_json)
    runtime = build_runtime(settings)
    running = edge_push.serve(runtime.db, settings)
    if running is None:
        raise typer.Exit(1)  # why is in the log
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(every):
            try:
                edge_workflows.reconcile(runtime.db, settings)
                edge_workflows.read_traffic(runtime.db, settings)
            except Exception as failure:  # the database blinked: the edge serves on, the next round tries again
                log.warning("edge round failed", error=f"{type(failure).__name__}: {failure}")
    finally:
        running.stop()


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    runtime = build_runtime(settings)
    migrations.upgrade(runtime.db.engine)
    typer.echo(f"database is up to date: {runtime.db.engine.url.render_as_string(hide_password=True)}")


@mail_app.command("outbox")
def outbox(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    limit: int = typer.Option(50, help="How many of the newest messages to show."),
) -> None:
    """List the newest messages in the outbox, sent or not."""
    runtime = build_runtime(_settings())
    with runtime.db.session(write=False) as session:
        messages = mail.outbox(session, limit=limit)
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in messages], indent=2))
        return
    table = Table("id", "created", "to", "subject", "kind", "status")
    for m in messages:
        table.add_row(str(m.id), m.created_at.isoformat(timespec="seconds"), m.to_address, m.subject, m.kind,
                      m.status)
    Console().print(table)
