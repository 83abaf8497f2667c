"""Wiring: the one place where Cloudlet's parts are chosen and put together."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from cloudlet import __version__
from cloudlet.actions import registry as action_registry
from cloudlet.actions import runner as action_runner
from cloudlet.agent import workflows as agent_workflows
from cloudlet.alerts import workflows as alert_workflows
from cloudlet.billing import workflows as billing_workflows
from cloudlet.config import Settings
from cloudlet.edge import certificates as edge_certificates
from cloudlet.edge import push as edge_push
from cloudlet.edge import workflows as edge_workflows
from cloudlet.instances import build as instance_build
from cloudlet.instances import copies as instance_copies
from cloudlet.instances import deletion as instance_deletion
from cloudlet.instances import power as instance_power
from cloudlet.instances import rebuild as instance_rebuild
from cloudlet.instances import ssh_trust
from cloudlet.instances import suspension as instance_suspension
from cloudlet.instances import work as instance_work
from cloudlet.instances import workflows as instance_workflows
from cloudlet.integrations import workflows as integration_workflows
from cloudlet.kit import logging as cloudlet_logging
from cloudlet.kit.db import Database
from cloudlet.kit.ratelimit import RateLimiter
from cloudlet.mail.service import Mailer
from cloudlet.metrics import workflows as metrics_workflows
from cloudlet.nodes import firewall_push as node_firewall_push
from cloudlet.nodes import service as nodes
from cloudlet.nodes import workflows as node_workflows
from cloudlet.shield import bandwidth_workflows
from cloudlet.shield import push as shield_push
from cloudlet.shield import workflows as shield_workflows
from cloudlet.surfaces.deps import Runtime
from cloudlet.webhooks import workflows as webhook_workflows
from cloudlet.worker import Worker


def register_procedures() -> None:
    """Tell the action engine how each command is carried out (idempotent; nothing registers on import)."""
    action_registry.register(*instance_build.PROCEDURES, *instance_deletion.PROCEDURES,
                             *instance_suspension.PROCEDURES, *instance_power.PROCEDURES,
                             *instance_rebuild.PROCEDURES, *instance_copies.PROCEDURES, *shield_push.PROCEDURES,
                             *node_firewall_push.PROCEDURES, *edge_push.PROCEDURES,
                             *edge_certificates.PROCEDURES)
    action_runner.use_work(instance_work.Work)


def build_runtime(settings: Settings) -> Runtime:
    """Choose the database and rate-limit storage the settings ask for."""
    register_procedures()  # an API process ends stale actions through them, a CLI process too
    db = Database(settings.effective_database_url)
    mailer = Mailer(db, settings)
    db.after_commit.append(mailer.on_commit)
    limiter = RateLimiter(settings.redis_url, prefix=settings.redis_prefix)
    return Runtime(settings=settings, db=db, limiter=limiter, mailer=mailer,
                   drivers=nodes.libvirt_drivers(settings))


def create_worker(settings: Settings | None = None, runtime: Runtime | None = None) -> Worker:
    """The durable-workflow worker (DBOS) with every queue and scheduled job; start() launches it."""
    runtime = runtime or build_runtime(settings or Settings())
    register_procedures()
    return Worker(runtime.settings, runtime.db, drivers=runtime.drivers,
                  queues=[billing_workflows.QUEUE, webhook_workflows.QUEUE, action_runner.QUEUE,
                          metrics_workflows.QUEUE, bandwidth_workflows.QUEUE, integration_workflows.QUEUE,
                          alert_workflows.QUEUE],
                  schedules=[*billing_workflows.schedules(runtime.settings),
                             *webhook_workflows.schedules(runtime.settings),
                             *integration_workflows.schedules(runtime.settings),
                             *node_workflows.schedules(runtime.settings),
                             *instance_workflows.schedules(runtime.settings),
                             *metrics_workflows.schedules(runtime.settings),
                             *instance_copies.schedules(runtime.settings),
                             *ssh_trust.schedules(runtime.settings),
                             *shield_workflows.schedules(runtime.settings),
                             *bandwidth_workflows.schedules(runtime.settings),
                             *edge_workflows.schedules(runtime.settings),
                             *agent_workflows.schedules(runtime.settings),
                             *alert_workflows.schedules(runtime.settings)])


TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def create_app(settings: Settings | None = None, runtime: Runtime | None = None, *,
               worker: Worker | None = None) -> FastAPI:
    """The API server with every surface mounted at its base path (and a worker run alongside, if given)."""
    from cloudlet.surfaces import mount  # the five surfaces load only in a process that serves them

    runtime = runtime or build_runtime(settings or Settings())
    app = FastAPI(
        title="Cloudlet",
        version=__version__,
        description="A self-hosted VPS cloud. Five API dialects, one core: see the tags.",
        openapi_tags=mount.TAGS,
        docs_url=None,  # served by surfaces/docs.py from local files
        redoc_url=None,  # ReDoc would load its script from a CDN; Swagger UI covers the same document
        lifespan=worker.lifespan if worker is not None else None,
        telemetry=None if runtime.settings.opentelemetry else TELEMETRY_OFF,
    )
    app.state.runtime = runtime
    mount.install(app, runtime)
    return app


def create_api_app() -> FastAPI:
    """The API server alone, its logs set up first: uvicorn's factory for `api --workers N`."""
    settings = Settings()
    cloudlet_logging.configure(settings.log_level, json=settings.log_json)  # else structlog's defaults print locals
    return create_app(settings)


def create_app_with_worker() -> FastAPI:
    """The API server with a worker in the same process: uvicorn's factory for `serve --workers N`."""
    settings = Settings()
    cloudlet_logging.configure(settings.log_level, json=settings.log_json)  # a fresh process: set up its logs
    runtime = build_runtime(settings)
    return create_app(runtime=runtime, worker=create_worker(runtime=runtime))
