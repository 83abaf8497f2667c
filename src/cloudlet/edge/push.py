"""The edge takes its configuration: an `edge_push` action, opened by the change that needs it (edge/service.py,
once per transaction) and run by the action engine once the change commits; a scheduled round and `cloudlet
serve`'s start do the same outside any action (edge/workflows.py).

The whole configuration is rendered from the database each time (every app whose origin is still its server's)
and handed to nginx (edge/nginx.py), which validates it with `nginx -t` before it replaces the one in place:
a rejected configuration leaves the edge serving the previous one, and the apps it changed show nginx's
reason. One push at a time on this machine (a lock file beside the configuration), each reading the database
when its turn comes, so an older configuration never lands after a newer one.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import structlog

from cloudlet.actions.registry import Procedure, task
from cloudlet.actions.work import ActionWork
from cloudlet.config import Settings
from cloudlet.drivers.base import GuestFailed
from cloudlet.edge import nginx, server, service
from cloudlet.kit.db import Database

APPLY_SECONDS = 120.0  # render, `nginx -t` (the CRS takes a moment per app) and reload
RECORD_TASK = service.PUSH_TASKS[-1]
CHAIN, KEY = "fullchain.pem", "key.pem"
log = structlog.get_logger(__name__)
_lock = threading.Lock()


def layout(settings: Settings) -> nginx.Layout:
    """Where this machine's edge keeps its files and listens."""
    return nginx.Layout(root=settings.data_dir / "edge", http_port=settings.edge_http_port,
                        https_port=settings.edge_https_port, listen=settings.edge_listen,
                        rate_per_second=settings.edge_rate_per_second, burst=settings.edge_burst,
                        connections_per_client=settings.edge_connections_per_client,
                        challenge_fallback=settings.edge_challenge_url or f"http://127.0.0.1:{settings.port}")


def certificate_dir(settings: Settings, hostname: str) -> Path:
    """Where this machine's edge keeps a hostname's certificate and key (written from the database)."""
    return settings.data_dir / "edge" / "certificates" / hostname


def sites(settings: Settings, served: Sequence[service.ServedApp]) -> list[nginx.Site]:
    """The apps as nginx serves them, with their hostnames' certificates (where write_certificates puts them)."""
    return [nginx.Site(app_id=app.app_id, hostnames=app.hostnames, origin_ip=app.origin_ip,
                       origin_port=app.origin_port, origin_tls=app.origin_port == service.TLS_ORIGIN_PORT,
                       waf=app.waf_enabled, paranoia=app.paranoia, excluded_rules=app.excluded_rules,
                       certificates=tuple(nginx.Certificate(kept.hostname,
                                                            certificate_dir(settings, kept.hostname) / CHAIN,
                                                            certificate_dir(settings, kept.hostname) / KEY)
                                          for kept in app.certificates)) for app in served]


def write_certificates(settings: Settings, served: Sequence[service.ServedApp]) -> None:
    """Write the served certificates and keys (the keys readable by root alone) where nginx reads them, and remove
    those of hostnames no longer served."""
    root = settings.data_dir / "edge" / "certificates"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    wanted = {kept.hostname: kept for app in served for kept in app.certificates}
    for hostname, kept in wanted.items():
        folder = certificate_dir(settings, hostname)
        _write(folder / CHAIN, kept.chain.encode(), 0o644)
        _write(folder / KEY, kept.key.encode(), 0o600)
    for folder in root.iterdir():
        if folder.name not in wanted:
            shutil.rmtree(folder, ignore_errors=True)


def _write(path: Path, content: bytes, mode: int) -> None:
    try:
        if path.read_bytes() == content:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as written:
        written.write(content)
    partial.replace(path)


@contextmanager
def _one_push(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with _lock, (root / ".push.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def apply_edge(db: Database, settings: Settings) -> str | None:
    """Give the edge its whole configuration now; why nginx refused it, or None.

    When nginx names the app whose files it refused, that app alone is held back, served as the edge last took
    it (or, if that is refused too or there is none, not at all) and showing nginx's reason, and the others go
    ahead: one app's broken configuration never stops every other app's changes."""
    where = layout(settings)
    with _one_push(where.root):
        with db.session(write=False) as session:
            served, left_out = service.served_apps(session, settings)
        held_back: set[int] = set()
        while True:
            try:
                write_certificates(settings, served)
                nginx.apply(where, sites(settings, served))
                error = None
            except nginx.EdgeRejected as rejected:
                error = f"the edge refused the configuration: {rejected.reason}"
                if rejected.app_id is not None:
                    served = _held_back(db, settings, served, rejected.app_id, held_back)
                    left_out[rejected.app_id] = f"the edge refused the app's configuration: {rejected.reason}"
                    continue
            break
        with db.session() as session:
            service.record_push(session, served, left_out, error)
    return error


def _held_back(db: Database, settings: Settings, served: list[service.ServedApp], app_id: int,
               held_back: set[int]) -> list[service.ServedApp]:
    """The served apps with app_id as the edge last took it; without it if it was already held back (each app
    is tried at most twice: the loop above ends)."""
    earlier = None
    if app_id not in held_back:
        held_back.add(app_id)
        with db.session(write=False) as session:
            earlier = service.served_earlier(session, settings, app_id)
    kept = [item for item in served if item.app_id != app_id]
    return kept if earlier is None else [earlier if item.app_id == app_id else item for item in served]


def serve(db: Database, settings: Settings) -> server.EdgeServer | None:
    """Give this machine's edge its configuration and run it (`cloudlet serve`); the caller stops it. A
    configuration nginx refuses is logged and the edge serves the one in place; an edge that cannot start
    (its ports taken, nginx missing) is logged and the API serves without it (None)."""
    error = apply_edge(db, settings)
    if error is not None:
        log.warning("edge configuration refused at start", error=error)
    edge = server.EdgeServer(layout(settings))
    try:
        edge.start()
    except Exception as failure:  # the API serves all the same: an operator reads why in the log
        log.error("edge not started", error=f"{type(failure).__name__}: {failure}")
        edge.stop()
        return None
    log.info("edge serving", http_port=settings.edge_http_port, https_port=settings.edge_https_port)
    return edge


@task(APPLY_SECONDS)
def edge_apply(work: ActionWork) -> str:
    """Give the edge its whole configuration (nginx validates it first)."""
    error = apply_edge(work.db, work.settings)
    if error is not None:
        raise GuestFailed(error)
    return "the edge serves the apps' latest versions"


def conclude_push(work: ActionWork, task: str | None, reason: str | None) -> None:
    """Record how the push ended: its last task, then the action's end."""
    work.end_unheld(RECORD_TASK, "the apps' versions are recorded as served", task, reason)


PROCEDURES = (  # registered by app.py
    Procedure(service.PUSH_COMMAND, service.PUSH_TASKS, (edge_apply,), conclude_push, work=ActionWork),
)
