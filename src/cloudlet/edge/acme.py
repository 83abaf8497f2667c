"""Certificates for the edge's hostnames from an ACME CA by HTTP-01, in the stages an action records.

An issuance is four steps, each its own call so that a durable workflow can run them as the tasks
"order, challenge, validate, install" and resume after a crash:

    issuer.order(hostname)            -> Order       (plain strings: a task stores it as JSON)
    issuer.answer(order, dir)         writes the key authorizations, tells the CA to look
    issuer.validate(order, dir)       waits for the CA's verdict, then removes the files
    issuer.finalize(order)            -> Issued      (a fresh key, its CSR, the chain)

Nothing secret crosses a stage: the certificate key is made in finalize() and only returned, so
an order stored between tasks holds URLs and tokens only. `issue()` runs all four in one call.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import structlog
from acme import challenges, crypto_util, errors, messages
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.b64 import b64decode
from josepy.errors import DeserializationError
from josepy.interfaces import JSONDeSerializable
from josepy.jwa import ES256, RS256
from josepy.jwk import JWK, JWKEC, JWKRSA
from requests.adapters import HTTPAdapter

log = structlog.get_logger(__name__)

CALL_SECONDS = 10.0  # one HTTP exchange with the CA; the issuance's own deadline may cut it shorter
FIRST_POLL_SECONDS = 0.1  # a local CA decides in milliseconds; a public one asks for patience by Retry-After
MAX_POLL_SECONDS = 2.0
MAX_REASON_CHARS = 500
# RFC 8555 8.3: a token is base64url. Checking it keeps a hostile CA from naming a file outside challenge_dir.
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")
USER_AGENT = "cloudlet-edge"


@dataclass(frozen=True)
class Issued:
    """A certificate chain and the key it certifies."""

    fullchain_pem: bytes
    key_pem: bytes  # the certificate's private key (PEM); never logged
    not_after: datetime  # UTC

    def __repr__(self) -> str:
        return f"Issued(not_after={self.not_after.isoformat()}, fullchain_pem=<{len(self.fullchain_pem)} bytes>)"


class AcmeFailed(Exception):
    """The CA refused or the order failed: .reason is the CA's own problem detail (type and detail) or what failed (a timeout, an unreachable directory); .retry_after is seconds to wait when the CA rate-limited us (urn:ietf:params:acme:error:rateLimited, Retry-After), else None."""  # noqa: E501

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Challenge:
    """One HTTP-01 challenge of an order: the authorization it proves and the file that proves it."""

    authorization_url: str
    url: str
    token: str


@dataclass(frozen=True)
class Order:
    """An order the CA opened for one hostname; only URLs and tokens, so a task can store it and another resume it."""

    url: str
    hostname: str
    challenges: tuple[Challenge, ...]

    def to_json(self) -> str:
        """The order as JSON, for an action's task record."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Order:
        """The order a previous task stored with to_json()."""
        data = json.loads(text)
        return cls(url=data["url"], hostname=data["hostname"],
                   challenges=tuple(Challenge(**item) for item in data["challenges"]))


class _DeadlineAdapter(HTTPAdapter):
    """Every request gets the shorter of CALL_SECONDS and the time left, and trusts the given CA bundle."""

    def __init__(self, deadline: float, ca_bundle: Path | None) -> None:
        super().__init__()
        self.deadline = deadline
        self.ca_bundle = ca_bundle

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None,
             verify: bool | str = True, cert: Any = None,
             proxies: dict[str, str] | None = None) -> requests.Response:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise requests.Timeout("the issuance's deadline has passed")
        # acme's ClientNetwork only knows verify=True/False, and requests may have swapped True for
        # REQUESTS_CA_BUNDLE by now: a CA bundle given to the issuance is applied here, last.
        if self.ca_bundle is not None and verify is not False:
            verify = str(self.ca_bundle)
        return super().send(request, stream=stream, timeout=min(CALL_SECONDS, left), verify=verify,
                            cert=cert, proxies=proxies)


class Issuer:
    """One ACME account at one directory; every call made through it ends by `seconds` after its making."""

    def __init__(self, directory_url: str, account_key: Path, *, ca_bundle: Path | None = None,
                 email: str | None = None, seconds: float = 60.0) -> None:
        self.directory_url = directory_url
        self.account_key = account_key
        self.ca_bundle = ca_bundle
        self.email = email
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self._client: ClientV2 | None = None
        self._jwk: JWK | None = None
        self._retry_after: str | None = None
        self._answered: set[str] = set()

    def __enter__(self) -> Issuer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections to the CA."""
        if self._client is not None:
            self._client.net.session.close()

    @property
    def account_url(self) -> str:
        """The account's URL at the CA (registered or found again on first use), for the action's record."""
        with self._failing("registering"):
            account = self._connected().net.account
            if account is None:
                raise AcmeFailed("the CA did not say where the account is")
            return str(account.uri)

    def order(self, hostname: str) -> Order:
        """Open an order for hostname (registering the account on first use); a new order on every call."""
        with self._failing("ordering"):
            client = self._connected()
            identifier = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=hostname)
            # The order is built here rather than by ClientV2.new_order, which wants a CSR and so a key
            # made now; this way the key is made in finalize() and never has to wait between tasks.
            reply = self._post(client.directory["newOrder"], messages.NewOrder(identifiers=[identifier]))
            body = messages.Order.from_json(reply.json())
            url = reply.headers.get("Location")
            if not url:
                raise AcmeFailed("the CA answered the new order without its Location")
            found: list[Challenge] = []
            for authorization_url in body.authorizations:
                authorization = self._authorization(authorization_url)
                if authorization.status == messages.STATUS_VALID:
                    continue  # the CA reused an authorization this account proved earlier
                found.append(Challenge(authorization_url, *self._http01(authorization, hostname)))
        log.info("acme order opened", hostname=hostname, order=url, challenges=len(found))
        return Order(url=url, hostname=hostname, challenges=tuple(found))

    def answer(self, order: Order, challenge_dir: Path) -> None:
        """Write each key authorization to challenge_dir/<token> and ask the CA to check it; safe to repeat."""
        with self._failing("answering the challenge"):
            self._publish(order, challenge_dir)
            for challenge in order.challenges:
                if challenge.url in self._answered:
                    continue
                authorization = self._authorization(challenge.authorization_url)
                if authorization.status != messages.STATUS_PENDING:
                    continue  # decided already; validate() reports how
                for body in authorization.challenges:
                    # A challenge still reads "pending" while the CA's validator has it queued, and pebble
                    # then takes a second POST as a second validation: hence the memory of what was sent.
                    # A retry by a new issuer (after a crash) asks the CA to look again, as RFC 8555 7.5.1 allows.
                    if body.uri == challenge.url and body.status == messages.STATUS_PENDING:
                        self._connected().answer_challenge(body, body.chall.response(self._account_jwk()))
                        self._answered.add(challenge.url)
        log.info("acme challenge answered", hostname=order.hostname, order=order.url)

    def validate(self, order: Order, challenge_dir: Path) -> None:
        """Wait until the CA has checked every challenge; the files are removed afterwards whatever happens."""
        try:
            with self._failing("validating"):
                # Written again so that a retry after a crash, or after withdraw(), still proves the token.
                self._publish(order, challenge_dir)
                for challenge in order.challenges:
                    self._await_authorization(challenge, order.hostname)
        finally:
            withdraw(order, challenge_dir)
        log.info("acme challenge validated", hostname=order.hostname, order=order.url)

    def finalize(self, order: Order) -> Issued:
        """Make a fresh key, send its CSR and fetch the chain; raises AcmeFailed unless the order is ready."""
        with self._failing("finalizing"):
            body = self._order(order.url)
            if body.status == messages.STATUS_INVALID:
                raise AcmeFailed(_problem(body.error) if body.error else "the CA marked the order invalid")
            if body.status in (messages.STATUS_PROCESSING, messages.STATUS_VALID):
                # The key of that earlier finalization was never stored, so its certificate is no use.
                raise AcmeFailed("the order was finalized before with a key that is gone; open a new order")
            if body.status != messages.STATUS_READY:
                raise AcmeFailed(f"the order is {body.status.name}, not ready: validate its challenges first")
            key = ec.generate_private_key(ec.SECP256R1())
            key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
            csr = x509.load_pem_x509_csr(crypto_util.make_csr(key_pem, [order.hostname]))
            self._post(body.finalize, messages.CertificateRequest(csr=csr))
            certificate_url = self._await_certificate(order.url)
            fullchain = self._post(certificate_url, None).content
            issued = _checked(fullchain, key_pem, key, order.hostname)
        log.info("acme certificate issued", hostname=order.hostname, not_after=issued.not_after.isoformat())
        return issued

    def _connected(self) -> ClientV2:
        """The client, with the directory read and the account registered or found again."""
        if self._client is not None:
            return self._client
        jwk = self._account_jwk()
        net = ClientNetwork(jwk, alg=ES256 if isinstance(jwk, JWKEC) else RS256,
                            user_agent=USER_AGENT, timeout=int(CALL_SECONDS))
        adapter = _DeadlineAdapter(self.deadline, self.ca_bundle)
        net.session.mount("https://", adapter)
        net.session.mount("http://", adapter)
        net.session.hooks["response"].append(self._remember_retry_after)
        client = ClientV2(ClientV2.get_directory(self.directory_url, net), net)
        registration = messages.NewRegistration.from_data(email=self.email, terms_of_service_agreed=True)
        try:
            client.new_account(registration)
            log.info("acme account registered", directory=self.directory_url)
        except errors.ConflictError as existing:
            # The CA knows this key already and says where its account is: that is all a signed request needs.
            net.account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
        self._client = client
        return client

    def _account_jwk(self) -> JWK:
        if self._jwk is None:
            self._jwk = _load_account_key(self.account_key)
        return self._jwk

    def _post(self, url: str, body: JSONDeSerializable | None) -> requests.Response:
        """A signed POST (a POST-as-GET when body is None), fetching nonces from the directory's newNonce."""
        client = self._connected()
        return client.net.post(url, body, new_nonce_url=client.directory["newNonce"])

    def _authorization(self, url: str) -> messages.Authorization:
        authorization: messages.Authorization = messages.Authorization.from_json(self._post(url, None).json())
        return authorization

    def _order(self, url: str) -> messages.Order:
        body: messages.Order = messages.Order.from_json(self._post(url, None).json())
        return body

    def _http01(self, authorization: messages.Authorization, hostname: str) -> tuple[str, str]:
        """The URL and token of the authorization's HTTP-01 challenge."""
        for body in authorization.challenges:
            if isinstance(body.chall, challenges.HTTP01):
                token = str(body.chall.encode("token"))
                if not TOKEN.fullmatch(token):
                    raise AcmeFailed("the CA sent a challenge token that is not base64url")
                return body.uri, token
        raise AcmeFailed(f"the CA offers no http-01 challenge for {hostname}")

    def key_authorizations(self, order: Order) -> dict[str, str]:
        """What the CA must find at /.well-known/acme-challenge/<token> for each of the order's challenges (public:
        the token and the account key's thumbprint)."""
        jwk = self._account_jwk()
        return {challenge.token: challenges.HTTP01(token=b64decode(challenge.token)).validation(jwk)
                for challenge in order.challenges}

    def _publish(self, order: Order, challenge_dir: Path) -> None:
        challenge_dir.mkdir(parents=True, exist_ok=True)
        for token, validation in self.key_authorizations(order).items():
            _write_public(challenge_dir / token, validation.encode())

    def _await_authorization(self, challenge: Challenge, hostname: str) -> None:
        for pause in self._pauses():
            authorization = self._authorization(challenge.authorization_url)
            if authorization.status == messages.STATUS_VALID:
                return
            if authorization.status != messages.STATUS_PENDING:  # invalid, deactivated, expired, revoked
                raise AcmeFailed(_authorization_problem(authorization, hostname))
            self._pause(pause)
        raise AcmeFailed(f"the CA had not validated {hostname} within {self.seconds:g}s")

    def _await_certificate(self, order_url: str) -> str:
        for pause in self._pauses():
            body = self._order(order_url)
            if body.status == messages.STATUS_VALID and body.certificate:
                return str(body.certificate)
            if body.status == messages.STATUS_INVALID:
                raise AcmeFailed(_problem(body.error) if body.error else "the CA marked the order invalid")
            self._pause(pause)
        raise AcmeFailed(f"the CA had not issued the certificate within {self.seconds:g}s")

    def _pauses(self) -> Iterator[float]:
        pause = FIRST_POLL_SECONDS
        while time.monotonic() < self.deadline:
            yield pause
            pause = min(pause * 2, MAX_POLL_SECONDS)

    def _pause(self, default: float) -> None:
        """Wait as the CA's Retry-After asks (else default), never past the deadline."""
        wanted = _seconds_from(self._retry_after) or default
        time.sleep(max(0.0, min(wanted, self.deadline - time.monotonic())))

    def _remember_retry_after(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # A requests hook sees every response, including the refusal that acme turns into messages.Error
        # without its headers.
        self._retry_after = response.headers.get("Retry-After")

    @contextlib.contextmanager
    def _failing(self, step: str) -> Iterator[None]:
        """Turn whatever the library or the network raised into AcmeFailed with a reason a person can act on."""
        try:
            yield
        except AcmeFailed:
            raise
        except messages.Error as problem:
            retry_after = _seconds_from(self._retry_after) if problem.code == "rateLimited" else None
            raise AcmeFailed(_problem(problem), retry_after) from problem
        except requests.Timeout as error:
            raise AcmeFailed(f"{step}: no answer from the CA in time ({self.seconds:g}s for the issuance): "
                             f"{_short(error)}") from error
        except requests.exceptions.SSLError as error:
            raise AcmeFailed(f"{step}: the CA's TLS certificate is not trusted (ca_bundle?): {_short(error)}"
                             ) from error
        except requests.RequestException as error:
            raise AcmeFailed(f"{step}: cannot reach the CA at {self.directory_url}: {_short(error)}") from error
        except (errors.Error, DeserializationError, ValueError, KeyError) as error:
            raise AcmeFailed(f"{step}: the CA's answer was not understood: {_short(error)}") from error


def withdraw(order: Order, challenge_dir: Path) -> None:
    """Remove the order's key authorization files; files already gone are fine."""
    for challenge in order.challenges:
        (challenge_dir / challenge.token).unlink(missing_ok=True)


def issue(directory_url: str, hostname: str, challenge_dir: Path, account_key: Path, *,
          ca_bundle: Path | None = None, email: str | None = None, seconds: float = 60.0) -> Issued:
    """Get a certificate for hostname from the ACME directory by HTTP-01, in one call (the four stages above).

    The key authorization goes to challenge_dir/<token> (which the edge serves at
    http://hostname/.well-known/acme-challenge/<token>) and is removed afterwards whatever happens. The account
    key is made (EC P-256) and stored at account_key (mode 0600) on first use, and the account registered (or
    found again) with the terms agreed; the certificate gets a fresh key each time. ca_bundle is what to trust
    for the directory's HTTPS (a local ACME server's own CA); every HTTP call has a timeout, and the whole
    issuance gives up after `seconds`.
    """
    with Issuer(directory_url, account_key, ca_bundle=ca_bundle, email=email, seconds=seconds) as issuer:
        order = issuer.order(hostname)
        try:
            issuer.answer(order, challenge_dir)
            issuer.validate(order, challenge_dir)
        finally:
            withdraw(order, challenge_dir)
        return issuer.finalize(order)


def _load_account_key(path: Path) -> JWK:
    """The account key at path, made (EC P-256, mode 0600) when there is none yet."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        pem = _store_new_account_key(path)
    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return JWKEC(key=key)
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return JWKRSA(key=key)
    raise AcmeFailed(f"the account key at {path} is neither EC P-256 nor RSA of 2048 bits or more")


def _store_new_account_key(path: Path) -> bytes:
    """Make a key and link it into place, so a concurrent first use ends with one key that both then read."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)  # fails when another process stored its key first: theirs is read back
    finally:
        draft.unlink(missing_ok=True)
    return path.read_bytes()


def _write_public(path: Path, content: bytes) -> None:
    """Replace path's content at once, readable by the web server (mode 0644): never a half-written token."""
    draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    draft.write_bytes(content)
    draft.chmod(0o644)
    draft.replace(path)


def _checked(fullchain: bytes, key_pem: bytes, key: ec.EllipticCurvePrivateKey, hostname: str) -> Issued:
    """The chain as Issued, once its first certificate is for hostname and for our key."""
    chain = x509.load_pem_x509_certificates(fullchain)
    leaf = chain[0]
    if leaf.public_key() != key.public_key():
        raise AcmeFailed("the CA's certificate is not for the key we sent")
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    if hostname not in names:
        raise AcmeFailed(f"the CA's certificate names {', '.join(names)}, not {hostname}")
    return Issued(fullchain_pem=fullchain, key_pem=key_pem, not_after=leaf.not_valid_after_utc)


def _problem(problem: messages.Error) -> str:
    """The CA's problem document as one line: its type, detail and any subproblems."""
    parts = [f"{problem.typ}: {problem.detail or problem.description or ''}".rstrip(": ")]
    parts += [_problem(sub) for sub in problem.subproblems or ()]
    return _short("; ".join(parts))


def _authorization_problem(authorization: messages.Authorization, hostname: str) -> str:
    found = [_problem(body.error) for body in authorization.challenges if body.error is not None]
    return f"{hostname}: " + ("; ".join(found) or f"the authorization is {authorization.status.name}")


def _seconds_from(retry_after: str | None) -> float | None:
    """Seconds from now that a Retry-After header (seconds or an HTTP date) asks for."""
    if not retry_after:
        return None
    if retry_after.strip().isdigit():
        return float(retry_after.strip())
    try:
        when = email.utils.parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _short(error: object) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "..."
