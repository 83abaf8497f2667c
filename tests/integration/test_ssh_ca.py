"""The SSH certificate authority on Shardlyn's surface: certificates signed for an organization's servers,
listed, read and revoked; CA keys generated, rotated and retired by an operator; new guests trusting the CA
through their seed and running ones kept current through their agent."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import SSHCertificate, load_ssh_public_identity

from cloudlet.drivers.seed import CA_KEYS_PATH, REVOKED_KEYS_PATH
from cloudlet.images.models import ImageCapability
from cloudlet.instances import ssh_trust
from cloudlet.kit import clock
from cloudlet.sshca import service as sshca
from cloudlet.surfaces.deps import Runtime
from tests.cloud import Cloud
from tests.conftest import Api
from tests.helpers import Person, make_user
from tests.integration.test_instances import order, running


def public_line(private: Any) -> str:
    """The OpenSSH public line of a private key."""
    return private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode() + " me@laptop"


USER_KEY = public_line(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture
def person(runtime: Runtime) -> Person:
    return make_user(runtime, "ada@example.com")


@pytest.fixture
def admin(runtime: Runtime) -> Person:
    return make_user(runtime, "root@example.com", admin=True)


def sign(client: httpx.Client, **changes: Any) -> httpx.Response:
    """POST /v1/ssh/certificate with the user's key for root, changed as asked."""
    return client.post("/v1/ssh/certificate", json={"public_key": USER_KEY, "principals": ["root"]} | changes)


def parsed(line: str) -> SSHCertificate:
    found = load_ssh_public_identity(line.encode())
    assert isinstance(found, SSHCertificate)
    return found


def test_a_certificate_is_signed_for_the_callers_organization_and_openssh_reads_it(
        api: Api, person: Person, tmp_path: Path) -> None:
    client = api.as_(person.token)
    answer = sign(client, principals=["root", "deploy"], validity_hours=8)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {"certificate", "serial_number", "valid_after", "valid_before", "principals"} <= body.keys()
    assert body["principals"] == ["root", "deploy"]
    assert body["organization_id"] == str(person.project_id)
    cert = parsed(body["certificate"])
    assert str(cert.serial) == body["serial_number"]
    assert cert.valid_principals == [b"root", b"deploy"]
    assert cert.key_id.decode() == f"cloudlet:{body['id']}:project-{person.project_id}:instance-all"
    assert cert.valid_before - cert.valid_after == 8 * 3600 + 60  # backdated a minute for guests' clocks
    assert body["valid_before"].endswith("Z") and body["valid_after"].endswith("Z")
    ca = api.client.get("/v1/ssh/ca-public-key")  # public: no credential
    assert ca.status_code == 200, ca.text
    assert cert.signature_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) \
        == " ".join(ca.json()["public_key"].split()[:2]).encode()
    cert.verify_cert_signature()
    (tmp_path / "id-cert.pub").write_text(body["certificate"] + "\n")
    described = subprocess.run(["ssh-keygen", "-L", "-f", str(tmp_path / "id-cert.pub")], capture_output=True,
                               text=True, timeout=30, check=True).stdout
    assert "user certificate" in described and f"Serial: {body['serial_number']}" in described
    assert client.get(f"/v1/ssh/certificates/{body['id']}").json()["certificate"] == body["certificate"]
    listed = client.get("/v1/ssh/certificates").json()
    assert (listed["total"], [c["id"] for c in listed["certificates"]]) == (1, [body["id"]])


def test_validity_defaults_to_eight_hours_and_is_bounded_by_the_setting(api: Api, person: Person) -> None:
    client = api.as_(person.token)
    default = parsed(sign(client).json()["certificate"])
    assert default.valid_before - default.valid_after == 8 * 3600 + 60
    assert sign(client, validity_hours=24).status_code == 200
    for hours in (0, 25, -1):
        refused = sign(client, validity_hours=hours)
        assert refused.status_code == 400, refused.text
        assert "validity_hours must be between 1 and 24" in refused.json()["error"]


def _weak_rsa() -> str:
    return public_line(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505  # the weak key refused


@pytest.mark.parametrize(("changes", "says"), [
    ({"public_key": "ssh-ed25519 not-base64!"}, "not a valid public key"),
    ({"public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAA"}, "not a valid public key"),
    ({"public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"}, "OpenSSH format"),
    ({"public_key": "ssh-ed25519-cert-v01@openssh.com AAAA"}, "OpenSSH format"),
    ({"public_key": "weak-rsa"}, "at least 2048 bits"),
    ({"public_key": "ssh-dss AAAAB3NzaC1kc3M= old@laptop"}, "OpenSSH format"),
    ({"principals": ["Root"]}, "is not a login name"),
    ({"principals": ["root; rm -rf /"]}, "is not a login name"),
    ({"principals": ["root", "root"]}, "each principal is named once"),
    ({"principals": []}, "principals"),
    ({"principals": ["u" + str(n) for n in range(17)]}, "principals"),
    ({"node_id": "6f1c3a8e-0000-4000-8000-000000000000"}, "not hypervisor nodes"),
    ({"validity_hours": "eight"}, "validity_hours"),
])
def test_bad_input_is_a_clear_400_and_signs_nothing(api: Api, person: Person, changes: dict[str, Any],
                                                    says: str) -> None:
    client = api.as_(person.token)
    if changes.get("public_key") == "weak-rsa":
        changes["public_key"] = _weak_rsa()
    refused = sign(client, **changes)
    assert refused.status_code == 400, refused.text
    assert says in refused.json()["error"], refused.json()
    assert client.get("/v1/ssh/certificates").json()["total"] == 0


def test_certificates_of_another_organization_are_not_found(runtime: Runtime, api: Api, person: Person) -> None:
    other = make_user(runtime, "eve@example.com")
    mine = sign(api.as_(person.token)).json()
    theirs = api.as_(other.token)
    assert theirs.get(f"/v1/ssh/certificates/{mine['id']}").status_code == 404
    assert theirs.post(f"/v1/ssh/certificates/{mine['id']}/revoke").status_code == 404
    assert theirs.get("/v1/ssh/certificates").json() == {"certificates": [], "total": 0}
    assert sign(theirs, organization_id=person.project_id).status_code == 404  # not a member
    assert api.as_(person.token).get(f"/v1/ssh/certificates/{mine['id']}").json()["revoked_at"] is None


def revoked_by(krl: bytes, certificate: str, tmp_path: Path) -> bool:
    """Whether OpenSSH's ssh-keygen finds the certificate in the revocation list."""
    (tmp_path / "krl").write_bytes(krl)
    (tmp_path / "cert.pub").write_text(certificate + "\n")
    asked = subprocess.run(["ssh-keygen", "-Q", "-f", str(tmp_path / "krl"), str(tmp_path / "cert.pub")],
                           capture_output=True, text=True, timeout=30, check=False)
    assert asked.returncode in (0, 1), asked.stderr
    return asked.returncode == 1


def test_a_revoked_certificate_is_in_the_revocation_list_until_it_expires(
        runtime: Runtime, api: Api, person: Person, tmp_path: Path) -> None:
    client = api.as_(person.token)
    kept, revoked = sign(client).json(), sign(client, validity_hours=1).json()
    done = client.post(f"/v1/ssh/certificates/{revoked['id']}/revoke")
    assert done.status_code == 200 and done.json()["revoked_at"] is not None
    again = client.post(f"/v1/ssh/certificates/{revoked['id']}/revoke")
    assert again.json()["revoked_at"] == done.json()["revoked_at"]  # revoking twice changes nothing
    with runtime.db.session(write=False) as session:
        files = sshca.trust_files(session)
    assert revoked_by(files.revoked_keys, revoked["certificate"], tmp_path)
    assert not revoked_by(files.revoked_keys, kept["certificate"], tmp_path)
    with clock.travel(timedelta(hours=2)), runtime.db.session(write=False) as session:
        later = sshca.trust_files(session)  # expired: refused by its dates, no longer listed
    assert not revoked_by(later.revoked_keys, revoked["certificate"], tmp_path)
    assert later.digest != files.digest


def test_an_operator_generates_rotates_and_retires_ca_keys(api: Api, person: Person, admin: Person) -> None:
    operator, client = api.as_(admin.token), api.as_(person.token)
    assert client.get("/v1/ssh/ca/keys").status_code in (403, 404)
    assert client.post("/v1/ssh/ca/keys/rotate").status_code in (403, 404)
    first = operator.post("/v1/ssh/ca/keys").json()
    assert first["status"] == "active"
    ahead = operator.post("/v1/ssh/ca/keys")
    assert ahead.status_code == 201 and ahead.json()["status"] == "trusted"  # trusted before it signs
    before = sign(client).json()
    assert before["ca_fingerprint"] == first["fingerprint"]
    trusted = api.client.get("/v1/ssh/ca-public-key").json()
    assert trusted["fingerprint"] == first["fingerprint"] and len(trusted["trusted_keys"]) == 2

    rotated = operator.post("/v1/ssh/ca/keys/rotate").json()
    assert (rotated["id"], rotated["status"]) == (ahead.json()["id"], "active")
    assert sign(client).json()["ca_fingerprint"] == rotated["fingerprint"]
    states = {k["id"]: k["status"] for k in operator.get("/v1/ssh/ca/keys").json()["keys"]}
    assert states == {first["id"]: "trusted", rotated["id"]: "active"}

    refused = operator.post(f"/v1/ssh/ca/keys/{rotated['id']}/retire")
    assert refused.status_code == 409 and "rotate" in refused.json()["error"]
    retired = operator.post(f"/v1/ssh/ca/keys/{first['id']}/retire")
    assert retired.json()["status"] == "retired"
    assert api.client.get("/v1/ssh/ca-public-key").json()["trusted_keys"] == [rotated["public_key"]]
    assert operator.post("/v1/ssh/ca/keys/no-such-key/retire").status_code == 404
    fresh = operator.post("/v1/ssh/ca/keys/rotate").json()  # nothing generated ahead: a new key
    assert fresh["id"] not in states and fresh["status"] == "active"


def test_new_guests_trust_the_ca_through_their_seed_and_running_ones_get_revocations_through_their_agent(
        cloud: Cloud, tmp_path: Path) -> None:
    cloud.image_can(ImageCapability.CLOUD_INIT, ImageCapability.GUEST_AGENT, ImageCapability.SSH)
    client = cloud.client()
    certificate = sign(client).json()  # the CA key exists before the server is built
    server = running(client, client.post("/api/instances", json=order(cloud)).json()["id"])
    guest = next(g.name for g in cloud.driver.list_guests())
    seeded = cloud.driver.seeded(guest)
    assert seeded is not None and seeded.ssh_trust is not None
    assert seeded.ssh_trust.key_ids == (f"cloudlet:*:project-{cloud.customer.project_id}:instance-all",)
    assert certificate["ca_fingerprint"] and seeded.ssh_trust.ca_keys.startswith("ssh-ed25519 ")

    db, drivers = cloud.runtime.db, cloud.runtime.drivers
    ssh_trust.push_all(db, drivers)  # whatever the schedule did before, the guest now holds the current files
    assert ssh_trust.push_all(db, drivers).pushed == []  # and is not asked again while nothing changes
    assert client.post(f"/v1/ssh/certificates/{certificate['id']}/revoke").status_code == 200
    report = ssh_trust.push_all(db, drivers)
    assert report.pushed == [guest], report
    krl = cloud.driver.guest_file(guest, REVOKED_KEYS_PATH)
    assert krl is not None and krl[1] == 0o644 and revoked_by(krl[0], certificate["certificate"], tmp_path)
    ca_keys = cloud.driver.guest_file(guest, CA_KEYS_PATH)
    assert ca_keys is not None and ca_keys[0].decode() == seeded.ssh_trust.ca_keys
    assert server["status"] == "running"


def test_guests_of_images_without_ssh_get_no_trust_and_are_not_pushed(cloud: Cloud) -> None:
    client = cloud.client()
    running(client, client.post("/api/instances", json=order(cloud)).json()["id"])
    guest = next(g.name for g in cloud.driver.list_guests())
    seeded = cloud.driver.seeded(guest)
    assert seeded is not None and seeded.ssh_trust is None
    assert ssh_trust.push_all(cloud.runtime.db, cloud.runtime.drivers).pushed == []
    assert cloud.driver.guest_file(guest, REVOKED_KEYS_PATH) is None


def test_the_worker_pushes_on_its_schedule(cloud: Cloud) -> None:
    assert ssh_trust.SCHEDULE_NAME in {s.name for s in cloud.worker.schedules}
