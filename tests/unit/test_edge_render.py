"""The edge's nginx and ModSecurity configuration as rendered (no nginx runs): hostnames, origins, the WAF per
app, certificates, and every value that could smuggle syntax into the configuration refused."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from cloudlet.edge.logs import Offsets, traffic
from cloudlet.edge.nginx import MODSECURITY_MODULE, Certificate, Layout, Site, culprit, render

ROOT = Path("/var/lib/cloudlet/edge")
LAYOUT = Layout(root=ROOT, http_port=8080, https_port=8443, listen="127.0.0.1")
CONF = ROOT / "config" / "current"


def site(**changes: object) -> Site:
    base = Site(app_id=7, hostnames=("shop.example.com", "www.shop.example.com"), origin_ip="203.0.113.10",
                origin_port=8000, origin_tls=False, waf=True)
    return replace(base, **changes)  # type: ignore[arg-type]


def server_blocks(text: str) -> list[str]:
    """Each top-level `server { ... }` block of a site file."""
    return re.findall(r"^server \{\n.*?^\}", text, flags=re.S | re.M)


def test_the_module_is_loaded_by_debians_absolute_path_and_everything_stays_under_root() -> None:
    main = render(LAYOUT, [site()])["nginx.conf"]
    assert f"load_module {MODSECURITY_MODULE};" in main
    assert "pid /var/lib/cloudlet/edge/nginx.pid;" in main
    assert "error_log /var/lib/cloudlet/edge/logs/error.log" in main
    for directive in ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path",
                      "scgi_temp_path"):
        assert re.search(rf"{directive} /var/lib/cloudlet/edge/temp/\w+;", main)
    assert "/etc/nginx" not in main.replace("/etc/nginx/unicode.mapping", "")
    assert "/var/log/nginx" not in main and "/var/lib/nginx" not in main
    assert f"include {CONF}/sites/app-7.conf;" in main


def test_unknown_hosts_get_a_default_server_that_never_proxies() -> None:
    main = render(LAYOUT, [site()])["nginx.conf"]
    default = main[main.index("listen 127.0.0.1:8080 default_server;"):main.index("include ")]
    assert "return 404;" in default
    assert "proxy_pass" not in default
    assert "listen 127.0.0.1:8443 ssl default_server;" in main
    assert "ssl_reject_handshake on;" in main


def test_every_hostname_answers_on_http_with_the_forwarding_headers() -> None:
    files = render(LAYOUT, [site()])
    text = files["sites/app-7.conf"]
    (http,) = server_blocks(text)
    assert "listen 127.0.0.1:8080;" in http
    assert "server_name shop.example.com www.shop.example.com;" in http
    assert "proxy_pass http://cloudlet_app_7;" in http
    assert "server 203.0.113.10:8000;" in text
    main = files["nginx.conf"]
    for header in ("Host $host", "X-Real-IP $remote_addr", "X-Forwarded-For $proxy_add_x_forwarded_for",
                   "X-Forwarded-Proto $scheme"):
        assert f"proxy_set_header {header};" in main
    assert re.search(r"proxy_read_timeout \d+s;", main)
    assert re.search(r"proxy_connect_timeout \d+s;", main)


def test_the_acme_challenge_is_served_before_the_waf_for_every_hostname() -> None:
    files = render(LAYOUT, [site()])
    challenge = "location ^~ /.well-known/acme-challenge/ {\n        modsecurity off;"
    (http,) = server_blocks(files["sites/app-7.conf"])
    assert challenge in http
    assert f"alias {LAYOUT.challenge_dir}/;" in http
    assert LAYOUT.challenge_dir == ROOT / "acme-challenge"
    assert "location ^~ /.well-known/acme-challenge/" in files["nginx.conf"]  # unknown hosts too


def test_a_token_this_edge_does_not_hold_is_asked_of_the_api() -> None:
    files = render(replace(LAYOUT, challenge_fallback="http://127.0.0.1:8081"), [site()])
    for text in (files["sites/app-7.conf"], files["nginx.conf"]):  # every hostname, and unknown hosts too
        assert "error_page 404 = @cloudlet_acme;" in text
        named = text[text.index("location @cloudlet_acme {"):]
        assert named.index("proxy_pass http://127.0.0.1:8081;") < named.index("}") and "modsecurity off;" in named
    assert "@cloudlet_acme" not in render(LAYOUT, [site()])["sites/app-7.conf"]  # no fallback, no named location
    for wrong in ("127.0.0.1:8081", "http://127.0.0.1:8081/path", "http://a b", "ftp://x", "http://x;evil"):
        with pytest.raises(ValueError, match="challenge_fallback"):
            render(replace(LAYOUT, challenge_fallback=wrong), [site()])


def test_ipv6_and_tls_origins() -> None:
    text = render(LAYOUT, [site(origin_ip="2001:db8::10", origin_port=443, origin_tls=True)])["sites/app-7.conf"]
    assert "server [2001:db8::10]:443;" in text
    assert "proxy_pass https://cloudlet_app_7;" in text
    main = render(LAYOUT, [site()])["nginx.conf"]
    assert "proxy_ssl_verify off;" in main
    assert "server [2001:db8::10]:443;" in render(LAYOUT, [site(origin_ip="2001:DB8:0::10", origin_port=443)])[
        "sites/app-7.conf"]  # normalised


def test_an_ipv6_listen_address_adds_a_listener_on_each_port() -> None:
    files = render(replace(LAYOUT, listen_v6="::"), [site(certificates=(
        Certificate("shop.example.com", Path("/certs/shop/fullchain.pem"), Path("/certs/shop/key.pem")),))])
    assert "listen [::]:8080 default_server;" in files["nginx.conf"]
    assert "listen [::]:8080;" in files["sites/app-7.conf"]
    assert "listen [::]:8443 ssl http2;" in files["sites/app-7.conf"]


def test_waf_on_gives_the_app_its_own_rules_over_the_shared_crs() -> None:
    files = render(LAYOUT, [site(paranoia=3, excluded_rules=(942100, 920350))])
    (http,) = server_blocks(files["sites/app-7.conf"])
    assert "modsecurity on;" in http
    assert f"modsecurity_rules_file {CONF}/modsec/app-7.conf;" in http
    rules = files["modsec/app-7.conf"]
    assert "SecRuleEngine On" in rules
    assert "setvar:tx.paranoia_level=3" in rules
    assert "SecRuleRemoveById 920350\nSecRuleRemoveById 942100\n" in rules
    assert "SecAuditLogFormat JSON" in rules
    assert "SecAuditEngine RelevantOnly" in rules
    assert "SecAuditLogType Serial" in rules
    assert f"SecAuditLog {ROOT}/logs/app-7.audit.log" in rules
    assert "SecAuditLogParts AHZ" in rules  # no request headers or bodies: cookies and passwords stay out
    base = files["modsec/base.conf"]
    assert "Include /etc/modsecurity/crs/crs-setup.conf" in base
    assert "Include /usr/share/modsecurity-crs/rules/*.conf" in base
    assert "SecRuleEngine" not in base and "SecAuditLog " not in base  # an http-level audit log overrides apps'
    assert f"SecDataDir {ROOT}/modsec-data" in base
    assert f"modsecurity_rules_file {CONF}/modsec/base.conf;" in files["nginx.conf"]


def test_waf_off_turns_modsecurity_off_for_the_app() -> None:
    files = render(LAYOUT, [site(waf=False, paranoia=4, excluded_rules=(942100,))])
    (http,) = server_blocks(files["sites/app-7.conf"])
    assert "modsecurity off;" in http
    assert "modsecurity on;" not in http
    assert "modsec/app-7.conf" not in files
    assert "modsec/base.conf" not in files  # no app needs the CRS: nginx does not parse it
    assert "modsecurity_rules_file" not in files["nginx.conf"]


def test_each_paranoia_level_is_rendered_and_others_refused() -> None:
    for level in (1, 2, 3, 4):
        assert f"tx.paranoia_level={level}" in render(LAYOUT, [site(paranoia=level)])["modsec/app-7.conf"]
    for wrong in (0, 5, True, "2"):
        with pytest.raises(ValueError, match="paranoia"):
            render(LAYOUT, [site(paranoia=wrong)])


def test_certificates_add_one_https_server_each() -> None:
    certificates = (Certificate("shop.example.com", Path("/certs/shop/fullchain.pem"), Path("/certs/shop/key.pem")),
                    Certificate("www.shop.example.com", Path("/certs/www/fullchain.pem"), Path("/certs/www/key.pem")))
    text = render(LAYOUT, [site(certificates=certificates)])["sites/app-7.conf"]
    http, first, second = server_blocks(text)
    assert "ssl" not in http
    assert "listen 127.0.0.1:8443 ssl http2;" in first
    assert "server_name shop.example.com;" in first
    assert "ssl_certificate /certs/shop/fullchain.pem;" in first
    assert "ssl_certificate_key /certs/shop/key.pem;" in first
    assert "server_name www.shop.example.com;" in second
    assert "ssl_certificate /certs/www/fullchain.pem;" in second
    for block in (first, second):
        assert "modsecurity on;" in block
        assert "proxy_pass http://cloudlet_app_7;" in block
        assert "acme-challenge" not in block  # http-01 is answered on HTTP only


def test_rate_and_connection_limits_come_from_the_layout() -> None:
    main = render(replace(LAYOUT, rate_per_second=20, burst=40, connections_per_client=10), [site()])["nginx.conf"]
    assert "rate=20r/s" in main
    assert "limit_req zone=cloudlet_edge_rate burst=40 nodelay;" in main
    assert "limit_conn cloudlet_edge_conn 10;" in main


def test_the_files_name_the_directory_they_are_rendered_for() -> None:
    generation = ROOT / "config" / "0123456789abcdef"
    files = render(LAYOUT, [site()], directory=generation)
    assert f"include {generation}/sites/app-7.conf;" in files["nginx.conf"]
    assert f"modsecurity_rules_file {generation}/modsec/app-7.conf;" in files["sites/app-7.conf"]


@pytest.mark.parametrize("hostname", [
    "shop.example.com;", "shop.example.com }", "a.example.com\nserver { }", "a.example.com b.example.com",
    "*.example.com", "-bad.example.com", "bad-.example.com", "exa$mple.com", "shop..example.com", "",
    ".example.com", "example.com.", "a" * 64 + ".example.com", "xn--é.example", "192.0.2.1", "under_score.example",
    "~regex.example", "shop.example.com'", 'shop.example.com"'])
def test_hostnames_that_are_not_plain_dns_names_are_refused(hostname: str) -> None:
    with pytest.raises(ValueError):
        render(LAYOUT, [site(hostnames=("ok.example.com", hostname))])


@pytest.mark.parametrize("origin_ip", [
    "203.0.113.10; return 200", "localhost", "203.0.113.10:80", "[2001:db8::1]", "fe80::1%eth0", "", "1.2.3",
    "203.0.113.10 backup"])
def test_origins_that_are_not_ip_literals_are_refused(origin_ip: str) -> None:
    with pytest.raises(ValueError, match="origin_ip"):
        render(LAYOUT, [site(origin_ip=origin_ip)])


@pytest.mark.parametrize("path", [
    "relative/fullchain.pem", "/certs/a b.pem", "/certs/a;b.pem", "/certs/$host.pem", "/certs/{x}.pem",
    "/certs/a\nb.pem", "/certs/'x'.pem", "/certs/../../etc/shadow", '/certs/"x".pem', "/certs/a#b.pem"])
def test_certificate_paths_with_syntax_are_refused(path: str) -> None:
    good = Path("/certs/shop/key.pem")
    for certificate in (Certificate("shop.example.com", Path(path), good),
                        Certificate("shop.example.com", good, Path(path))):
        with pytest.raises(ValueError):
            render(LAYOUT, [site(certificates=(certificate,))])


def test_a_certificate_for_another_hostname_or_twice_for_one_is_refused() -> None:
    chain, key = Path("/certs/x/fullchain.pem"), Path("/certs/x/key.pem")
    with pytest.raises(ValueError, match="not one of its hostnames"):
        render(LAYOUT, [site(certificates=(Certificate("other.example.com", chain, key),))])
    with pytest.raises(ValueError, match="two certificates"):
        render(LAYOUT, [site(certificates=(Certificate("shop.example.com", chain, key),) * 2)])


@pytest.mark.parametrize("changes", [
    {"app_id": 0}, {"app_id": -1}, {"app_id": "7"}, {"origin_port": 0}, {"origin_port": 65536},
    {"origin_port": "80; return 200"}, {"excluded_rules": ("942100; SecRuleEngine Off",)}, {"excluded_rules": (0,)},
    {"hostnames": ()}, {"hostnames": "shop.example.com"}])
def test_other_values_out_of_shape_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render(LAYOUT, [site(**changes)])


@pytest.mark.parametrize("changes", [
    {"listen": "0.0.0.0; user root"}, {"listen": "::1"}, {"listen_v6": "127.0.0.1"}, {"http_port": 8443},
    {"root": Path("/srv/edge dir")}, {"root": Path("relative/edge")}, {"worker_user": "www-data; user root"},
    {"rate_per_second": 0}, {"burst": -1}])
def test_layouts_out_of_shape_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render(replace(LAYOUT, **changes), [site()])  # type: ignore[arg-type]


def test_two_apps_may_not_share_a_hostname_or_an_id() -> None:
    with pytest.raises(ValueError, match="belongs to both"):
        render(LAYOUT, [site(), site(app_id=8, hostnames=("WWW.shop.example.com",))])
    with pytest.raises(ValueError, match="twice"):
        render(LAYOUT, [site(), site(hostnames=("other.example.com",))])


def test_hostnames_are_lowercased_and_duplicates_dropped() -> None:
    text = render(LAYOUT, [site(hostnames=("Shop.Example.com", "shop.example.com"))])["sites/app-7.conf"]
    assert "server_name shop.example.com;" in text


def test_many_apps_size_the_server_name_hash() -> None:
    sites = [site(app_id=n, hostnames=(f"app{n}.example.com", f"www.app{n}.example.com")) for n in range(1, 1001)]
    main = render(LAYOUT, sites)["nginx.conf"]
    size = int(re.search(r"server_names_hash_max_size (\d+);", main)[1])  # type: ignore[index]
    assert size >= 4000


def test_traffic_reads_new_lines_and_follows_truncation(tmp_path: Path) -> None:
    layout = replace(LAYOUT, root=tmp_path)
    layout.logs.mkdir()
    access, audit = layout.access_log(7), layout.audit_log(7)
    access.write_text('{"status":200}\n{"status":403}\n{"status":2')  # the last line is still being written
    blocked = {"transaction": {"client_ip": "198.51.100.7", "time_stamp": "Mon Dec  7 11:17:37 2026",
                               "request": {"uri": "/?id=1'"}, "messages": [
                                   {"message": "SQL Injection Attack Detected via libinjection",
                                    "details": {"ruleId": "942100"}},
                                   {"message": "Inbound Anomaly Score Exceeded", "details": {"ruleId": "949110"}}]}}
    flagged = {"transaction": {"client_ip": "198.51.100.8", "time_stamp": "Mon Dec  7 11:17:38 2026",
                               "request": {"uri": "/"}, "messages": [{"message": "Missing Accept",
                                                                      "details": {"ruleId": "920300"}}]}}
    audit.write_text(json.dumps(blocked) + "\n" + json.dumps(flagged) + "\n")
    first = traffic(layout, 7)
    assert first.requests == 2
    (only,) = first.blocked
    assert (only.rule_id, only.client, only.uri) == (942100, "198.51.100.7", "/?id=1'")
    assert only.at.isoformat() == "2026-12-07T11:17:37+00:00"
    assert only.message == "SQL Injection Attack Detected via libinjection"
    with access.open("a") as handle:
        handle.write('00}\n{"status":200}\n')
    second = traffic(layout, 7, first.offset)
    assert (second.requests, second.blocked) == (2, [])
    assert Offsets.decode(second.offset.encode()) == second.offset
    access.write_text('{"status":200}\n')  # truncated in place (copytruncate)
    third = traffic(layout, 7, second.offset)
    assert third.requests == 1
    rotated = access.with_name(access.name + ".1")
    access.rename(rotated)  # rotated: the rest of the old file is read, then the new one
    with rotated.open("a") as handle:
        handle.write('{"status":201}\n')  # written before nginx reopened its log
    access.write_text('{"status":202}\n{"status":203}\n')
    assert traffic(layout, 7, third.offset).requests == 3
    assert traffic(layout, 8).requests == 0  # an app without logs yet


def test_nginx_complaints_name_the_app_they_come_from() -> None:
    kept = Path("/srv/edge/certificates/b.example")
    chain, key = kept / "fullchain.pem", kept / "key.pem"
    sites = [Site(1, ("a.example",), "192.0.2.10", 80, origin_tls=False, waf=True),
             Site(2, ("b.example",), "192.0.2.11", 80, origin_tls=False, waf=False,
                  certificates=(Certificate("b.example", chain, key),))]
    site_file = ('nginx: [emerg] invalid number of arguments in "proxy_pass" directive in '
                 "/srv/edge/config/18ee/sites/app-1.conf:12")
    assert culprit(site_file, sites) == 1
    rules = ('nginx: [emerg] "modsecurity_rules_file" directive Rules error. '
             "File: /srv/edge/config/x/modsec/app-2.conf")
    assert culprit(rules, sites) == 2
    certificate = f'nginx: [emerg] cannot load certificate "{chain}": PEM_read_bio_X509_AUX() failed'
    assert culprit(certificate, sites) == 2
    assert culprit("nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use)", sites) is None
    assert culprit("nginx: [emerg] unknown directive in /x/sites/app-9.conf:1", sites) is None  # not one of these
