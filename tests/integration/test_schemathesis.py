"""Every operation of every surface, fed schemathesis' generated input: never a 5xx, always the declared schema.

The server is the real app on SQLite with a FakeDriver node and a running worker (the `cloud` fixture). Each
operation gets a bounded, derandomized set of examples and no shrinking, so the run is repeatable and takes
a few minutes at most. Every case is sent as an administrator with a fresh full-access token, so that most
operations get past authentication even after a case revoked a token or suspended a user; about half of the
cases name real objects in their path (the administrator's server, project and token, the node, a plan), so
that operations are probed past "not found" too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.specs.openapi.schemas import OpenApiSchema

from cloudlet.auth.models import User, UserStatus
from cloudlet.instances import repository as instance_rows
from cloudlet.instances.models import InstanceStatus
from cloudlet.kit.ids import digest
from cloudlet.surfaces.deps import Runtime
from cloudlet.tokens import repository as token_rows
from tests.cloud import Cloud, credit
from tests.geoip import write_databases
from tests.helpers import make_user, mint_token
from tests.integration.test_instances import order

# the probe of the surfaces; both engines are covered elsewhere
pytestmark = [pytest.mark.long(seconds=120), pytest.mark.engines("sqlite")]

# examples per operation: valid input, then input that breaks the schema (slower to generate, so fewer)
EXAMPLES = {GenerationMode.POSITIVE: 5, GenerationMode.NEGATIVE: 2}
# GitHub sign-in set up (so its endpoints answer rather than 501 Not Configured), aimed at a loopback port
# that nothing serves: a case that got as far as calling GitHub would get a clean 503, and none is sent out.
GITHUB = {"github_client_id": "cloudlet-probe", "github_client_secret": "probe-secret",
          "github_authorize_url": "http://127.0.0.1:9/login/oauth/authorize",
          "github_token_url": "http://127.0.0.1:9/login/oauth/access_token", "github_api_url": "http://127.0.0.1:9"}
# A Telegram bot set up (so linking a chat answers rather than 503), its Bot API aimed at the same unserved port:
# the worker's round reaches nothing, and linking calls no Bot API.
TELEGRAM = {"telegram_bot_token": "123456789:probe-token", "telegram_api_url": "http://127.0.0.1:9"}
# Integrations the cases make may name public addresses (only private ones are refused here): the worker sends them
# nothing, so no case's message can leave the machine (creation and the API's answers are probed all the same).
NO_INTEGRATION_DELIVERIES = {"integration_deliveries": False}

# Operations that cannot be exercised by a request and its answer, and why.
EXCLUDED = {
    # a WebSocket upgrade (noVNC): a plain GET is refused by design and the protocol is tested in test_console
    ("GET", "/api/consoles/vnc"),
}


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    """GitHub sign-in and a Telegram bot configured against nothing (see GITHUB, TELEGRAM), integrations that send
    nothing (NO_INTEGRATION_DELIVERIES), and GeoIP databases (else Shield's country and ASN views answer 501 Not
    Configured)."""
    country_db, asn_db = write_databases(tmp_path)
    return dict(GITHUB) | TELEGRAM | NO_INTEGRATION_DELIVERIES | {"geoip_country_db": country_db,
                                                                  "geoip_asn_db": asn_db}


class Admin:
    """An administrator whose credential is fresh for every case (a case may revoke it or suspend him),
    with a server of his own and the ids of real objects that cases may name in their paths."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.runtime: Runtime = cloud.runtime
        self.person = make_user(self.runtime, "admin@example.com", admin=True)
        credit(self.runtime, self.person, 1_000_000)
        self.builds, self.can_build = 0, True
        self.current, self.token_id, self.stale = "", 0, True
        built = self._build_server()
        assert built is not None, "the administrator's first server was not built"
        self.server = built
        # an integration aimed at a public address, which the worker never sends to here (NO_INTEGRATION_DELIVERIES)
        made = cloud.api.as_(self.token()).post("/v1/integrations", json={
            "type": "slack", "name": "probe", "config": {"webhook_url": "https://hooks.slack.com/services/T0/B0/x"}})
        assert made.status_code == 201, made.text
        self.integration = made.json()["id"]

    def _build_server(self) -> int | None:
        """A new running server of the administrator's; None when the cloud cannot build one any more."""
        self.builds += 1
        created = self.cloud.api.as_(self.token()).post("/api/instances", json=order(
            self.cloud, project_id=self.person.project_id, name=f"probe-{self.builds}",
            hostname=f"probe-{self.builds}.example.com"))
        if created.status_code != 201:  # a case deleted or cordoned the node, retired the plan, ...
            self.can_build = False
            print("no more servers for the probe:", created.status_code, created.text)
            return None
        uuid = created.json()["id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with self.runtime.db.session(write=False) as session:
                row = instance_rows.instance(session, uuid)
                if row is not None and row.status is InstanceStatus.RUNNING and row.locked_action_id is None:
                    return row.id
                if row is None or row.status in (InstanceStatus.ERROR, InstanceStatus.DELETED):
                    return None
            time.sleep(0.1)
        return None

    def _server_alive(self) -> bool:
        with self.runtime.db.session(write=False) as session:
            row = instance_rows.instance(session, self.server)
            return row is not None and row.status is not InstanceStatus.DELETED

    def token(self) -> str:
        """A full-access token of an active administrator: a new one after anything that may have ended it."""
        if not self.stale:
            return self.current
        with self.runtime.db.session() as session:
            user = session.get(User, self.person.id)
            if user is None:  # a case deleted him: another administrator takes over
                self.person = make_user(self.runtime, f"admin{self.person.id}@example.com", admin=True)
            elif user.status is not UserStatus.ACTIVE or not user.is_admin:
                user.status, user.is_admin = UserStatus.ACTIVE, True
        self.current, self.stale = mint_token(self.runtime, self.person, "*"), False
        with self.runtime.db.session(write=False) as session:
            secret = self.current.rpartition("|")[2]  # tokens read `<id>|<secret>`; the digest is the secret's
            found = token_rows.find_by_hash(session, digest(secret))
            assert found is not None
            self.token_id = found.id
        return self.current

    def answered(self, method: str, status: int) -> None:
        """Note an answer: a change that went through (a logout, a suspension, a revocation) or a refusal
        may have ended the credential, so the next case gets a new one."""
        if status in (401, 403) or (method.upper() != "GET" and status < 300):
            self.stale = True

    def real_ids(self) -> dict[str, str]:
        """Path parameters by name, set to objects that exist (as far as earlier cases left them)."""
        if self.can_build and not self._server_alive():  # a case deleted it: later operations get a new one
            self.server = self._build_server() or self.server
        token_id = self.token_id
        server, project = str(self.server), str(self.person.project_id)
        return {"instance_id": server, "vps_id": server, "workload_id": f"w-{server}",
                "node_id": str(self.cloud.node_id), "plan_id": str(self.cloud.plan_id),
                "package_id": str(self.cloud.plan_id),
                "template_id": str(self.cloud.template_id), "user_id": str(self.cloud.customer.id),
                "userId": str(self.cloud.customer.id), "project_id": project, "orgId": project, "project": project,
                "token_id": str(token_id), "key_id": str(token_id), "integration_id": self.integration}


@pytest.fixture
def surfaces(cloud: Cloud) -> Iterator[tuple[OpenApiSchema, Admin]]:
    """The app's OpenAPI schema, loaded by schemathesis, and the administrator the cases act as."""
    spec = cloud.api.client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    yield schema, Admin(cloud)


def _send(cloud: Cloud, case: Case, token: str) -> Any:
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers={"Authorization": f"Bearer {token}"})
    kwargs.pop("verify", None)
    kwargs.pop("allow_redirects", None)
    kwargs.pop("timeout", None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    method, url = kwargs.pop("method"), kwargs.pop("url")
    return cloud.api.client.request(method, url, follow_redirects=False, **kwargs)


def _run_operation(cloud: Cloud, admin: Admin, operation: Any, mode: GenerationMode) -> None:
    @settings(max_examples=EXAMPLES[mode], derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
              report_multiple_bugs=False)
    @given(case=operation.as_strategy(mode), real=st.booleans())
    def probe(case: Case, real: bool) -> None:
        token = admin.token()
        if real and case.path_parameters:
            ids = admin.real_ids()
            case.path_parameters = {name: ids.get(name, value) for name, value in case.path_parameters.items()}
        response = _send(cloud, case, token)
        admin.answered(case.method, response.status_code)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    probe()


def test_every_operation_answers_without_server_errors_and_as_declared(
        cloud: Cloud, surfaces: tuple[OpenApiSchema, Admin]) -> None:
    schema, admin = surfaces
    failures: list[str] = []
    ran = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    # deletions last, so that the real objects other operations are probed with live as long as they can
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        ran += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run_operation(cloud, admin, operation, mode)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # an operation without input has no invalid input
            except (AssertionError, FailureGroup) as exc:
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {str(exc)[:1500]}")
    assert ran > 200, ran  # every surface's operations were reached, not a schema that lost most of them
    assert not failures, f"{len(failures)} of {ran} operations failed:\n\n" + "\n\n".join(failures)
