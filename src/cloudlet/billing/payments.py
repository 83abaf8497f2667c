"""Payment providers: where the money of a top-up comes from.

A provider collects an amount from a payer and says what it settled; the billing service then
credits exactly that to the wallet under a key derived from the provider's reference, so a
payment is credited once however often its notification or request is repeated. Card and
bank providers come later and speak their service's real protocol; the first provider is the
operator's own credit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from cloudlet.auth.models import User
from cloudlet.kit.errors import Forbidden


@dataclass(frozen=True)
class Payment:
    """Money a provider has settled: how much, in which currency, under which provider reference."""

    amount_cents: int
    currency: str
    reference: str


class PaymentProvider(Protocol):
    """Collects money for a top-up."""

    name: str

    def collect(self, session: Session, *, payer: User, amount_cents: int, currency: str, key: str) -> Payment:
        """Collect amount_cents from the payer and return the settled payment.

        Idempotent on key: collecting again with the same key returns the same payment (same
        reference) and takes no money twice. Raises a kit error (Forbidden, PaymentRequired,
        Unavailable) and settles nothing when the money cannot be collected.
        """
        ...


class AdminCreditProvider:
    """The operator pays: an administrator's top-up is settled at once; anyone else is refused,
    since no card or bank provider is configured to take their money."""

    name = "admin_credit"

    def collect(self, session: Session, *, payer: User, amount_cents: int, currency: str, key: str) -> Payment:
        """Settle at once for an administrator (reference derived from the key); Forbidden otherwise."""
        if not payer.is_admin:
            raise Forbidden("Self-service top-ups need a payment provider, and none is configured; "
                            "ask an operator to credit your wallet.", code="TOPUP_UNAVAILABLE")
        return Payment(amount_cents=amount_cents, currency=currency, reference=f"{payer.id}:{key}")


def default_provider() -> PaymentProvider:
    """The provider top-ups use."""
    return AdminCreditProvider()
