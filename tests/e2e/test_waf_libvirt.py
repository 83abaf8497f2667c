"""The WAF with the real edge: `cloudlet serve` runs its nginx (ModSecurity, the OWASP CRS) on loopback ports in
front of a real tiny guest's web server (busybox httpd on port 80, with a CGI that says what the proxy told it),
and Debian's pebble, resolving every name to 127.0.0.1, issues the hostnames' certificates by HTTP-01 against the
edge. A clean request reaches the guest with the client's address; SQL injection, path traversal and XSS get 403
with the rule set on and pass with it off; a rollback restores it; HTTPS verifies against pebble's root; a
failed challenge shows `failed` with the CA's reason and retry-ssl then succeeds; a configuration `nginx -t`
rejects leaves the edge serving the previous one and the app says why."""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloudlet.drivers.libvirt.guest import LibvirtDriver
from cloudlet.edge.models import WafHostname
from cloudlet.networking import service as networking
from cloudlet.networking.schemas import IpPoolUpdate
from cloudlet.surfaces.deps import Runtime
from tests import acme_server
from tests.acme_server import AcmeServer
from tests.cloud import REGION
from tests.e2e.test_instances_libvirt import (
    DELETION_SECONDS,
    GuestCluster,
    client,
    cluster,
    customer,
    node,
    order,
    status_of,
    tiny_image,
)
from tests.e2e.test_shield_libvirt import BOOT_SECONDS
from tests.helpers import free_port
from tests.integration.test_worker import wait_for

pytestmark = [pytest.mark.long(seconds=150), pytest.mark.engines("sqlite"),
              pytest.mark.skipif(not acme_server.available(), reason="pebble is not installed (scripts/setup.sh "
                                 "installs it with CLOUDLET_SETUP_EXTRAS=dev)")]

__all__ = ["cluster", "node", "tiny_image"]

# the other e2e tests hand out addresses of the same range on the same bridge: this test's guest takes one of
# 203.0.113.216-223
RESERVED = ["203.0.113.0/25", "203.0.113.128/26", "203.0.113.192/28", "203.0.113.208/29", "203.0.113.224/27"]
SHOP, SPARE = "shop.example.test", "spare.example.test"
ATTACKS = ["/?id=1%27%20OR%20%271%27=%271", "/?f=../../../etc/passwd", "/?q=%3Cscript%3Ealert(1)%3C/script%3E"]
CERTIFICATE_SECONDS = 60


def app_of(http: httpx.Client, app_id: int) -> dict[str, Any]:
    found: dict[str, Any] = http.get(f"/api/shield/waf/{app_id}").json()
    return found


def host_of(app: dict[str, Any], hostname: str) -> dict[str, Any]:
    [found] = [host for host in app["hostnames"] if host["hostname"] == hostname]
    return found


def served(http: httpx.Client, app_id: int) -> dict[str, Any]:
    """Wait until the edge serves the app's latest version."""
    wait_for(lambda: app_of(http, app_id)["status"] == "active", "the edge to serve the app", seconds=60)
    return app_of(http, app_id)


def https_get(port: int, hostname: str, root: ssl.SSLContext) -> httpx.Response:
    """GET / over HTTPS from the edge as hostname, the certificate verified against pebble's issuing root."""
    with httpx.Client(verify=root, timeout=10) as https:
        return https.send(https.build_request("GET", f"https://127.0.0.1:{port}/", headers={"Host": hostname},
                                              extensions={"sni_hostname": hostname}))


def set_chain(runtime: Runtime, hostname: str, chain: str) -> str:
    """Put chain in place of hostname's certificate chain in the database, as an intruder would; the one before."""
    with runtime.db.session() as session:
        row = session.scalars(select(WafHostname).where(WafHostname.hostname == hostname)).one()
        before, row.cert_chain = row.cert_chain, chain
    return before


def test_the_edge_fronts_a_real_guest_with_the_crs_and_certificates(runtime: Runtime, node: LibvirtDriver,
                                                                    cluster: GuestCluster, tmp_path: Path) -> None:
    with runtime.db.session() as session:
        for pool in networking.list_pools(session, REGION):
            networking.update_pool(session, pool.id, IpPoolUpdate(reserved=RESERVED))
    http_port, https_port = free_port(), free_port()
    data_dir = Path(cluster.env()["CLOUDLET_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    for folder in [data_dir, *data_dir.parents]:  # nginx's workers (www-data) walk down to the edge's files,
        if folder == Path(tempfile.gettempdir()):  # as they do to /var/lib/cloudlet/edge; pytest's are 0700
            break
        folder.chmod(folder.stat().st_mode | 0o011)
    with AcmeServer(http_port, workdir=tmp_path / "pebble") as ca:
        cluster.extra = {"CLOUDLET_EDGE_SERVE": "true", "CLOUDLET_EDGE_LISTEN": "127.0.0.1",
                         "CLOUDLET_EDGE_HTTP_PORT": str(http_port), "CLOUDLET_EDGE_HTTPS_PORT": str(https_port),
                         "CLOUDLET_ACME_DIRECTORY": ca.directory_url, "CLOUDLET_ACME_CA_BUNDLE": str(ca.ca_bundle),
                         "CLOUDLET_EDGE_TRAFFIC_SCHEDULE": "* * * * * *"}
        _process, url = cluster.serve()
        person = customer(runtime)
        edge = httpx.Client(base_url=f"http://127.0.0.1:{http_port}", headers={"Host": SHOP}, timeout=10)
        with client(url, person) as http, edge:
            server = http.post("/api/instances", json=order(runtime, person, "waf-1.example.com")).json()
            wait_for(lambda: status_of(http, server["id"]) == "running", "the guest to run", seconds=BOOT_SECONDS)
            origin = http.get(f"/api/instances/{server['id']}").json()["main_ip"]
            created = http.post("/api/shield/waf", json={"name": "shop", "origin_ip": origin, "hostname": SHOP})
            assert created.status_code == 201, created.text
            app_id = created.json()["id"]
            served(http, app_id)

            # a clean request reaches the guest, which learns the client's address; another Host does not
            assert edge.get("/").text.strip() == "hello from waf-1"
            said = edge.get("/cgi-bin/echo").text
            assert f"host={SHOP}" in said and "xff=127.0.0.1" in said and "real=127.0.0.1" in said, said
            stranger = edge.get("/", headers={"Host": "nobody.example.test"})
            assert stranger.status_code in (404, 421) and "hello" not in stranger.text
            # the rule set blocks the CRS's catalogue, and the edge says which rule
            assert [edge.get(attack).status_code for attack in ATTACKS] == [403, 403, 403]
            wait_for(lambda: len(http.get(f"/api/shield/waf/{app_id}/blocked").json()) >= 3,
                     "the blocked requests to be read", seconds=30)
            blocked = http.get(f"/api/shield/waf/{app_id}/blocked").json()
            assert all(block["rule_id"] and block["client"] == "127.0.0.1" for block in blocked), blocked
            assert {block["uri"].split("=")[0] for block in blocked} >= {"/?id", "/?f", "/?q"}
            assert app_of(http, app_id)["requests"] >= 2 and app_of(http, app_id)["blocked"] >= 3

            # the certificate: ordered when the hostname came, validated by pebble through the edge
            wait_for(lambda: host_of(app_of(http, app_id), SHOP)["ssl_status"] == "issued", "the certificate",
                     seconds=CERTIFICATE_SECONDS)
            root = ssl.create_default_context(cadata=ca.issuing_root_pem().decode())
            secured = https_get(https_port, SHOP, root)
            assert secured.status_code == 200 and secured.text.strip() == "hello from waf-1"
            assert host_of(app_of(http, app_id), SHOP)["ssl_expires_at"]

            # off, the attacks reach the guest; a rollback to the first version blocks them again
            off = http.post(f"/api/shield/waf/{app_id}/firewall", json={"enabled": False})
            assert off.status_code == 200 and off.json()["firewall"]["enabled"] is False
            served(http, app_id)
            assert [edge.get(attack).status_code for attack in ATTACKS] == [200, 200, 200]
            back = http.post(f"/api/shield/waf/{app_id}/rollback", json={"version": 1})
            assert back.status_code == 200 and back.json()["firewall"]["enabled"] is True, back.text
            served(http, app_id)
            assert [edge.get(attack).status_code for attack in ATTACKS] == [403, 403, 403]

            # a challenge the CA cannot check (the name points where the edge does not listen) fails with the
            # CA's reason; once the name points at the edge, retry-ssl gets the certificate
            ca.point(SPARE, "127.0.0.2")
            spare = http.post(f"/api/shield/waf/{app_id}/hostnames", json={"hostname": SPARE})
            assert spare.status_code == 201, spare.text
            wait_for(lambda: host_of(app_of(http, app_id), SPARE)["ssl_status"] == "failed", "the order to fail",
                     seconds=CERTIFICATE_SECONDS)
            assert "connection" in host_of(app_of(http, app_id), SPARE)["ssl_error"]
            ca.unpoint(SPARE)
            retried = http.post(f"/api/shield/waf/{app_id}/hostnames/{spare.json()['id']}/retry-ssl")
            assert retried.status_code == 200 and retried.json()["ssl_status"] == "pending", retried.text
            wait_for(lambda: host_of(app_of(http, app_id), SPARE)["ssl_status"] == "issued", "the retried order",
                     seconds=CERTIFICATE_SECONDS)
            assert https_get(https_port, SPARE, root).status_code == 200

            # a configuration nginx rejects (a certificate broken in the database behind Cloudlet's back) is never
            # loaded: the edge goes on serving the previous one, and the app says why until the certificate is sound
            sound = set_chain(runtime, SHOP, "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
            http.post(f"/api/shield/waf/{app_id}/firewall", json={"enabled": False})
            wait_for(lambda: app_of(http, app_id)["status"] == "error", "the edge to refuse", seconds=60)
            assert "refused" in app_of(http, app_id)["error"]
            assert [edge.get(attack).status_code for attack in ATTACKS] == [403, 403, 403]  # the previous one
            assert https_get(https_port, SHOP, root).status_code == 200
            set_chain(runtime, SHOP, sound)
            http.post(f"/api/shield/waf/{app_id}/firewall", json={"enabled": False, "paranoia_level": 1})
            served(http, app_id)
            assert edge.get(ATTACKS[0]).status_code == 200

            assert http.delete(f"/api/shield/waf/{app_id}").status_code == 204
            wait_for(lambda: edge.get("/").status_code in (404, 421), "the edge to drop the app", seconds=60)
            http.request("DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
            wait_for(lambda: status_of(http, server["id"]) == "gone", "the deletion", seconds=DELETION_SECONDS)
