"""A hostname's certificate as an action: `certificate_issue`, opened when a hostname is added (with an ACME
directory configured), by retry-ssl and by the renewal round (edge/service.py), and run by the action engine.

Its tasks are the ACME stages (edge/acme.py): acme_order opens an order and notes it in the action's params
(URLs and tokens only), acme_challenge writes the key authorization where the edge serves it and asks the CA to
look, acme_validate waits for the CA's verdict, certificate_install makes the key, fetches the chain, keeps both in
the database (the key sealed) and has the edge serve HTTPS with them (one it refuses is put back as it was). A CA
that refuses fails the task with its own reason (no retry: a CA's refusals count against its rate limits); a
rate-limited answer also records when the CA allows the next order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from cloudlet.actions import service as engine
from cloudlet.actions.registry import Procedure, task
from cloudlet.actions.work import ActionWork
from cloudlet.config import Settings
from cloudlet.drivers.base import GuestFailed
from cloudlet.edge import acme, push, service
from cloudlet.kit import clock
from cloudlet.kit.db import Database
from cloudlet.nodes.service import Drivers

STEP_SECONDS = 60.0  # each stage's own bound (every HTTP call to the CA has a shorter one)
RECORD_TASK = service.CERTIFICATE_TASKS[-1]
GONE = "the hostname was removed from its app"
T = TypeVar("T")


class CertificateWork(ActionWork):
    """An action's work, the hostname it orders a certificate for, and the order so far."""

    def __init__(self, db: Database, settings: Settings, drivers: Drivers, action_id: int,
                 call_seconds: float | None = None) -> None:
        super().__init__(db, settings, drivers, action_id, call_seconds)
        with db.session(write=False) as session:
            self.params = engine.params_of(session, action_id)
            self.hostname_id = int(self.params["hostname_id"])
            self.hostname = service.hostname_of(session, self.hostname_id)

    def name(self) -> str:
        """The hostname; the task fails when it was removed meanwhile."""
        if self.hostname is None:
            raise GuestFailed(GONE)
        return self.hostname

    def issuer(self) -> acme.Issuer:
        """An ACME client for the operator's directory, bounded by a stage's time."""
        directory = self.settings.acme_directory
        if not directory:
            raise GuestFailed(service.NO_ACME)
        return acme.Issuer(directory, self.settings.data_dir / "edge" / "acme-account.key",
                           ca_bundle=self.settings.acme_ca_bundle, email=self.settings.acme_email,
                           seconds=STEP_SECONDS)

    def order(self) -> acme.Order:
        """The order acme_order opened."""
        return acme.Order.from_json(str(self.params["order"]))

    def challenge_dir(self) -> Path:
        """Where the edge serves HTTP-01 key authorizations from."""
        return push.layout(self.settings).challenge_dir


def _at_the_ca(work: CertificateWork, stage: Callable[[acme.Issuer], T]) -> T:
    """Run one stage with a fresh client; the CA's refusal fails the task with the CA's reason (and a rate-limited
    answer records when the next order may go)."""
    try:
        with work.issuer() as issuer:
            return stage(issuer)
    except acme.AcmeFailed as failure:
        if failure.retry_after is not None:
            with work.db.session() as session:
                service.certificate_failed(session, work.hostname_id, work.action_id, failure.reason,
                                           clock.now() + timedelta(seconds=failure.retry_after))
        raise GuestFailed(failure.reason) from failure


@task(STEP_SECONDS)
def acme_order(work: CertificateWork) -> str:
    """Open an order for the hostname at the CA (registering the account on first use)."""
    hostname = work.name()
    order = _at_the_ca(work, lambda issuer: issuer.order(hostname))
    with work.db.session() as session:
        engine.note(session, work.action_id, order=order.to_json())
    return f"order {order.url} for {hostname}"


@task(STEP_SECONDS)
def acme_challenge(work: CertificateWork) -> str:
    """Publish the HTTP-01 key authorization (in this machine's edge, and through the API to every other edge)
    and ask the CA to check it."""
    work.name()
    keys = _at_the_ca(work, lambda issuer: issuer.key_authorizations(work.order()))
    with work.db.session() as session:
        service.publish_challenges(session, work.hostname_id, work.action_id, keys)
    _at_the_ca(work, lambda issuer: issuer.answer(work.order(), work.challenge_dir()))
    return "the key authorization is served at /.well-known/acme-challenge/; the CA was asked to look"


@task(STEP_SECONDS)
def acme_validate(work: CertificateWork) -> str:
    """Wait for the CA's verdict on the challenge (the key authorization is withdrawn then, whatever it was)."""
    work.name()
    try:
        _at_the_ca(work, lambda issuer: issuer.validate(work.order(), work.challenge_dir()))
    finally:
        with work.db.session() as session:
            service.withdraw_challenges(session, work.hostname_id)
    return "the CA validated the challenge"


@task(STEP_SECONDS + push.APPLY_SECONDS)
def certificate_install(work: CertificateWork) -> str:
    """Make the key, fetch the chain, keep both (the key sealed) and have the edge serve HTTPS with them."""
    hostname = work.name()
    issued = _at_the_ca(work, lambda issuer: issuer.finalize(work.order()))
    with work.db.session() as session:
        kept = service.install_certificate(session, work.settings, work.hostname_id, work.action_id,
                                           issued.fullchain_pem.decode(), issued.key_pem.decode())
    if kept is None:
        raise GuestFailed("a later order for the hostname took over, or the hostname was removed")
    error = push.apply_edge(work.db, work.settings)
    if error is not None:  # the edge keeps serving what it had: so does the database
        with work.db.session() as session:
            service.restore_certificate(session, work.hostname_id, kept)
        raise GuestFailed(error)
    with work.db.session() as session:  # issued once the edge serves it
        service.certificate_issued(session, work.hostname_id, work.action_id, issued.not_after)
    return f"certificate for {hostname} valid until {issued.not_after.isoformat()}, served by the edge"


def conclude_certificate(work: CertificateWork, task: str | None, reason: str | None) -> None:
    """Record how the order ended: the hostname's failure (with the CA's reason), then the action's end."""
    if task is not None and reason is not None:
        with work.db.session() as session:
            service.withdraw_challenges(session, work.hostname_id)
            service.certificate_failed(session, work.hostname_id, work.action_id, reason)
    work.end_unheld(RECORD_TASK, "the hostname's certificate is recorded", task, reason)


PROCEDURES = (  # registered by app.py
    Procedure(service.CERTIFICATE_COMMAND, service.CERTIFICATE_TASKS,
              (acme_order, acme_challenge, acme_validate, certificate_install), conclude_certificate,
              work=CertificateWork),
)
