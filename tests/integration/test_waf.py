"""The WAF on the primary surface (/api/shield/waf): apps in front of the caller's own servers, their hostnames,
the rule set, versions and rollback; each change given to the edge (the real nginx's configuration, checked
with `nginx -t`, not served: tests/e2e/test_waf_edge.py serves it) by an edge_push action; bad input, limits,
tenancy and scopes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cloudlet.edge import nginx, push
from cloudlet.edge import repository as edge_repository
from cloudlet.edge import service as edge_service
from cloudlet.edge.models import WafHostname
from cloudlet.kit import clock
from tests.cloud import Cloud, wait_for
from tests.helpers import make_user, mint_token
from tests.integration.test_instances import order, running

pytestmark = pytest.mark.skipif(not __import__("shutil").which("nginx", path="/usr/sbin:/usr/bin"),
                                reason="nginx is not installed: run scripts/setup.sh (it installs the edge)")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"waf_hostnames_per_app": 3, "edge_serve": False, "edge_domain": "edge.example.net",
            "edge_reserved_names": ["panel.example.com"]}


def server_address(cloud: Cloud, client: httpx.Client, project_id: int | None = None) -> str:
    """A running server of the client's, and its address."""
    body = order(cloud, **({"project_id": project_id} if project_id else {}))
    created = client.post("/api/instances", json=body)
    assert created.status_code == 201, created.text
    address: str = running(client, created.json()["id"])["main_ip"]
    return address


def new_app(client: httpx.Client, origin: str, hostname: str = "shop.example.com", **extra: Any) -> dict[str, Any]:
    created = client.post("/api/shield/waf", json={"name": "shop", "origin_ip": origin, "hostname": hostname,
                                                   **extra})
    assert created.status_code == 201, created.text
    app: dict[str, Any] = created.json()
    return app


def served(client: httpx.Client, app_id: int) -> dict[str, Any]:
    """Wait until the edge serves the app's latest version; the app."""
    wait_for(lambda: client.get(f"/api/shield/waf/{app_id}").json()["status"] == "active")
    app: dict[str, Any] = client.get(f"/api/shield/waf/{app_id}").json()
    return app


def test_an_app_fronts_one_of_my_servers_and_the_edge_takes_it(cloud: Cloud) -> None:
    client = cloud.client()
    origin = server_address(cloud, client)
    app = new_app(client, origin, "Shop.Example.com.")
    assert app["edge_name"].endswith(".edge.example.net") and app["origin_ip"] == origin
    assert (app["origin_port"], app["version"], app["status"]) == (80, 1, "pending")
    assert app["firewall"] == {"enabled": True, "paranoia_level": 1, "excluded_rules": []}
    [host] = app["hostnames"]
    assert (host["hostname"], host["primary"], host["ssl_status"]) == ("shop.example.com", True, "failed")
    assert "no ACME directory" in host["ssl_error"]
    assert served(client, app["id"])["error"] is None
    assert [a["id"] for a in client.get("/api/shield/waf").json()] == [app["id"]]
    config = (cloud.runtime.settings.data_dir / "edge").rglob("*.conf")
    assert any("shop.example.com" in path.read_text() for path in config)

    www = client.post(f"/api/shield/waf/{app['id']}/hostnames", json={"hostname": "www.example.com"})
    assert www.status_code == 201 and www.json()["primary"] is False, www.text
    off = client.post(f"/api/shield/waf/{app['id']}/firewall", json={"enabled": False, "paranoia_level": 2,
                                                                    "excluded_rules": [942100, 942100, 941100]})
    assert off.status_code == 200 and off.json()["firewall"] == {
        "enabled": False, "paranoia_level": 2, "excluded_rules": [941100, 942100]}
    assert served(client, app["id"])["version"] == 3
    versions = client.get(f"/api/shield/waf/{app['id']}/versions").json()
    assert [(v["number"], v["current"]) for v in versions] == [(3, True), (2, False), (1, False)]
    assert versions[2]["config"]["hostnames"] == ["shop.example.com"] and versions[2]["config"]["waf_enabled"]

    back = client.post(f"/api/shield/waf/{app['id']}/rollback", json={"version": 1})
    assert back.status_code == 200, back.text
    assert back.json()["firewall"]["enabled"] is True and back.json()["version"] == 4
    assert [h["hostname"] for h in back.json()["hostnames"]] == ["shop.example.com"]
    assert client.post(f"/api/shield/waf/{app['id']}/rollback", json={"version": 9}).status_code == 404
    served(client, app["id"])

    assert client.delete(f"/api/shield/waf/{app['id']}").status_code == 204
    assert client.get(f"/api/shield/waf/{app['id']}").status_code == 404
    wait_for(lambda: not any("shop.example.com" in path.read_text()
                             for path in (cloud.runtime.settings.data_dir / "edge").rglob("*.conf")))


def test_the_origin_must_be_one_of_my_servers(cloud: Cloud) -> None:
    client = cloud.client()
    mine = server_address(cloud, client)
    stranger = make_user(cloud.runtime, "eve@example.com")
    cloud.credit(stranger, 100_000)
    theirs = server_address(cloud, cloud.client(stranger), stranger.project_id)
    for origin, says in [(theirs, "one of your servers"), ("198.51.100.7", "one of your servers"),
                         ("not-an-ip", "is not an IP address"), ("", "is not an IP address")]:
        refused = client.post("/api/shield/waf", json={"name": "x", "origin_ip": origin, "hostname": "a.example.com"})
        assert refused.status_code == 422 and says in refused.text, (origin, refused.text)
    for port in (0, 65536):
        refused = client.post("/api/shield/waf", json={"name": "x", "origin_ip": mine, "origin_port": port,
                                                       "hostname": "a.example.com"})
        assert refused.status_code == 422, refused.text
    assert new_app(client, mine, origin_port=443)["origin_port"] == 443
    assert client.get("/api/shield/waf").json()[0]["origin_ip"] == mine


@pytest.mark.parametrize(("hostname", "status", "says"), [
    ("localhost", 422, "not fully qualified"),
    ("-bad-.example.com", 422, "not a valid label"),
    ("*.example.com", 422, "not a valid label"),
    ("1.2.3.4", 422, "looks like an address"),
    ("x" * 64 + ".example.com", 422, "not a valid label"),
    ("shop.edge.example.net", 422, "reserved"),
    ("edge.example.net", 422, "reserved"),
    ("panel.example.com", 422, "reserved"),
    ("api.panel.example.com", 422, "reserved"),
])
def test_bad_hostnames_are_refused(cloud: Cloud, hostname: str, status: int, says: str) -> None:
    client = cloud.client()
    refused = client.post("/api/shield/waf", json={"name": "x", "origin_ip": server_address(cloud, client),
                                                   "hostname": hostname})
    assert refused.status_code == status and says in refused.text, refused.text
    assert client.get("/api/shield/waf").json() == []


def test_hostnames_are_unique_across_customers_and_limited_per_app(cloud: Cloud) -> None:
    client = cloud.client()
    app = new_app(client, server_address(cloud, client))
    url = f"/api/shield/waf/{app['id']}/hostnames"
    stranger = make_user(cloud.runtime, "eve@example.com")
    cloud.credit(stranger, 100_000)
    other = cloud.client(stranger)
    theirs = server_address(cloud, other, stranger.project_id)
    taken = other.post("/api/shield/waf", json={"name": "copy", "origin_ip": theirs, "hostname": "SHOP.example.com"})
    assert taken.status_code == 409 and "already in use" in taken.text, taken.text
    assert client.post(url, json={"hostname": "shop.example.com"}).status_code == 409
    second = client.post(url, json={"hostname": "b.example.com"}).json()
    assert client.post(url, json={"hostname": "c.example.com"}).status_code == 201
    limit = client.post(url, json={"hostname": "d.example.com"})
    assert limit.status_code == 409 and "at most 3" in limit.text

    [primary] = [h for h in client.get(f"/api/shield/waf/{app['id']}").json()["hostnames"] if h["primary"]]
    assert client.delete(f"{url}/{primary['id']}").status_code == 204
    names = client.get(f"/api/shield/waf/{app['id']}").json()["hostnames"]
    assert [(h["hostname"], h["primary"]) for h in names] == [("b.example.com", True), ("c.example.com", False)]
    assert client.delete(f"{url}/{second['id']}").status_code == 204
    [last] = client.get(f"/api/shield/waf/{app['id']}").json()["hostnames"]
    refused = client.delete(f"{url}/{last['id']}")
    assert refused.status_code == 409 and "at least one hostname" in refused.text
    assert client.delete(f"{url}/999999").status_code == 404
    # two inserts of one name racing past the check: the second is told, and its transaction goes on
    with cloud.runtime.db.session() as session:
        twin = WafHostname(app_id=app["id"], hostname="c.example.com", is_primary=False, created_at=clock.now())
        assert edge_repository.insert_hostname(session, twin) is False
        assert edge_repository.hostname_taken(session, "c.example.com") is not None
    # a freed hostname is free for anyone again
    assert other.post("/api/shield/waf", json={"name": "mine now", "origin_ip": theirs,
                                               "hostname": "shop.example.com"}).status_code == 201


def test_another_projects_app_is_404_and_scopes_hold(cloud: Cloud) -> None:
    client = cloud.client()
    app = new_app(client, server_address(cloud, client))
    url = f"/api/shield/waf/{app['id']}"
    host = app["hostnames"][0]["id"]
    stranger = cloud.client(make_user(cloud.runtime, "eve@example.com"))
    assert stranger.get("/api/shield/waf").json() == []
    answers = [stranger.get(url), stranger.delete(url), stranger.post(f"{url}/firewall", json={"enabled": False}),
               stranger.post(f"{url}/hostnames", json={"hostname": "evil.example.com"}),
               stranger.delete(f"{url}/hostnames/{host}"), stranger.post(f"{url}/hostnames/{host}/retry-ssl"),
               stranger.get(f"{url}/versions"), stranger.post(f"{url}/rollback", json={"version": 1}),
               stranger.get(f"{url}/blocked"), client.get("/api/shield/waf/999999")]
    assert [a.status_code for a in answers] == [404] * 10
    reader = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "waf:read"))
    assert reader.get(url).status_code == 200 and reader.get(f"{url}/blocked").json() == []
    assert reader.post(f"{url}/firewall", json={"enabled": False}).status_code == 403
    assert reader.delete(url).status_code == 403
    shield_only = cloud.api.as_(mint_token(cloud.runtime, cloud.customer, "shield:read", "shield:write"))
    assert shield_only.get("/api/shield/waf").status_code == 403
    assert client.get(url).json()["firewall"]["enabled"] is True


def test_retry_ssl_without_an_acme_directory_says_so(cloud: Cloud) -> None:
    client = cloud.client()
    app = new_app(client, server_address(cloud, client))
    answer = client.post(f"/api/shield/waf/{app['id']}/hostnames/{app['hostnames'][0]['id']}/retry-ssl")
    assert answer.status_code == 501 and "ACME" in answer.text, answer.text
    bad = client.post(f"/api/shield/waf/{app['id']}/firewall", json={"enabled": True, "paranoia_level": 5})
    assert bad.status_code == 422
    assert client.post(f"/api/shield/waf/{app['id']}/firewall", json={}).status_code == 422


def sites_in_place(cloud: Cloud) -> str:
    """The server blocks of the configuration the edge serves now."""
    generation = nginx.current_generation(push.layout(cloud.runtime.settings))
    assert generation is not None
    return "".join(path.read_text() for path in sorted((generation / "sites").glob("*.conf")))


def test_an_app_the_edge_refuses_is_held_back_and_the_other_apps_go_ahead(cloud: Cloud) -> None:
    client = cloud.client()
    origin = server_address(cloud, client)
    good = served(client, new_app(client, origin, "good.example.com")["id"])
    bad = served(client, new_app(client, origin, "bad.example.com")["id"])
    # a certificate nginx cannot load, as a damaged row would hold: every configuration with it is refused
    with cloud.runtime.db.session() as session:
        [row] = edge_repository.hostnames(session, [bad["id"]])[bad["id"]]
        row.cert_action_id = 1
        session.flush()
        edge_service.install_certificate(session, cloud.runtime.settings, row.id, 1, "not a certificate", "no key")
    changed = client.post(f"/api/shield/waf/{bad['id']}/firewall", json={"enabled": False})
    assert changed.status_code == 200, changed.text
    wait_for(lambda: client.get(f"/api/shield/waf/{bad['id']}").json()["status"] == "error")
    refused = client.get(f"/api/shield/waf/{bad['id']}").json()
    assert "refused the app's configuration" in refused["error"] and "certificate" in refused["error"]
    assert str(cloud.runtime.settings.data_dir) not in refused["error"]
    # its last version carries the same certificate: it is not served at all, and the other app's changes are
    www = client.post(f"/api/shield/waf/{good['id']}/hostnames", json={"hostname": "www.good.example.com"})
    assert www.status_code == 201, www.text
    assert served(client, good["id"])["version"] == 2
    assert "www.good.example.com" in sites_in_place(cloud) and "bad.example.com" not in sites_in_place(cloud)
    assert client.get(f"/api/shield/waf/{bad['id']}").json()["status"] == "error"
