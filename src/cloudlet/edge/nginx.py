"""The WAF edge: Debian's nginx with ModSecurity v3 and the OWASP CRS in front of customers' apps.

The edge owns one directory (Layout.root) and nothing else: nginx runs with its prefix there, its logs, pid
file, temporary files and ModSecurity's data live there, and nothing under /etc/nginx or /var/lib/nginx is read
or written; only Debian's module, the CRS and the unicode map are read where Debian installs them.

    root/nginx.conf        a symlink to the configuration in place: config/<generation>/nginx.conf
    root/config/<gen>/     nginx.conf, sites/app-<id>.conf, modsec/base.conf, modsec/app-<id>.conf
    root/logs/             error.log, app-<id>.access.log (JSON lines), app-<id>.audit.log (ModSecurity JSON)
    root/acme-challenge/   files an ACME client drops, served on HTTP for every hostname
    root/temp/, root/modsec-data/   nginx's temporary files and ModSecurity's, written by the workers

Each configuration is written to a new generation directory whose files name each other by absolute path, so
`nginx -t` checks exactly the bytes that will be served, where they will be served from; it is put in place by
renaming a new symlink over root/nginx.conf (atomic), and the running master re-reads that path on SIGHUP.

The CRS is parsed once, at the http level, and every app's server block adds its own small rule set (engine
on, paranoia level, removed rules, audit log); the connector merges the shared rules into each server by
reference. Parsing the whole CRS per app costs about 0.2 s and 17 MB each: 1,000 apps would take minutes and
gigabytes to reload. Two facts of libmodsecurity 3.0 shape this: a server's own rules run before the shared
ones (so a per-app `tx.paranoia_level` is set before the CRS reads it), and an audit log path set at the http
level overrides every server's, so only servers name one. Debian's recommended modsecurity.conf is therefore
not included as it is (it sets a global audit log under /var/log/nginx and DetectionOnly); base.conf carries
its directives, with our paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import pwd
import re
import resource
import shutil
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

NGINX = Path("/usr/sbin/nginx")
MODSECURITY_MODULE = Path("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")  # Debian's path, absolute
# because Debian's load_module snippet says "modules/...", relative to a prefix we do not use
CRS_SETUP = Path("/etc/modsecurity/crs/crs-setup.conf")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
CRS_LOCAL_BEFORE = Path("/etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf")
CRS_LOCAL_AFTER = Path("/etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf")
UNICODE_MAPPING = Path("/etc/nginx/unicode.mapping")  # installed by libnginx-mod-http-modsecurity
WORKER_USER = "www-data"

NGINX_T_SECONDS = 600.0  # upper bound of one `nginx -t`; apply()'s own budget is usually the tighter one
REASON_CHARS = 400
PARANOIA_RULE_ID = 10001  # our per-app SecAction: ids below 100,000 are ModSecurity's range for local rules

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+@=,:~-]*")  # nothing nginx or ModSecurity would read as syntax
_GENERATION = re.compile(r"[0-9a-f]{16}")
_FALLBACK = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::\d{1,5})?")

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Certificate:
    """A certificate the edge presents for one hostname: the chain and key files, read by nginx's master."""

    hostname: str
    fullchain: Path
    key: Path


@dataclass(frozen=True)
class Site:
    """One WAF app as the edge serves it."""

    app_id: int
    hostnames: tuple[str, ...]  # every one answers on HTTP; those with a certificate on HTTPS too
    origin_ip: str  # IPv4 or IPv6 literal
    origin_port: int
    origin_tls: bool  # proxy to the origin with https:// (no verification of the origin's cert)
    waf: bool  # ModSecurity + CRS on, blocking (403), or off entirely for this app
    paranoia: int = 1  # CRS paranoia level 1-4
    excluded_rules: tuple[int, ...] = ()  # CRS rule ids removed for this app
    certificates: tuple[Certificate, ...] = ()


@dataclass(frozen=True)
class Layout:
    """Where the edge keeps its files and where it listens."""

    root: Path
    http_port: int
    https_port: int
    listen: str = "0.0.0.0"  # noqa: S104  # the edge faces the internet; tests give 127.0.0.1
    rate_per_second: int = 50  # per client address request rate (limit_req), the DDoS layer
    burst: int = 100
    connections_per_client: int = 100  # limit_conn per client address
    listen_v6: str | None = None  # an IPv6 address to listen on as well, e.g. "::"
    worker_user: str = WORKER_USER  # must be able to reach root (challenge files, temporary files)
    # where a challenge file this edge does not hold is asked for (the API, which serves every pending HTTP-01
    # key authorization from the database): an order run by another machine's worker is answered here too
    challenge_fallback: str | None = None

    @property
    def challenge_dir(self) -> Path:
        """Where an ACME client drops http-01 tokens, served at /.well-known/acme-challenge/ on HTTP."""
        return self.root / "acme-challenge"

    @property
    def conf(self) -> Path:
        """The configuration nginx runs with: a symlink into the generation in place."""
        return self.root / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        """nginx's pid file."""
        return self.root / "nginx.pid"

    @property
    def logs(self) -> Path:
        """The edge's logs."""
        return self.root / "logs"

    @property
    def error_log(self) -> Path:
        """nginx's error log (and ModSecurity's messages)."""
        return self.logs / "error.log"

    def access_log(self, app_id: int) -> Path:
        """An app's access log: one JSON object per request its server blocks answered."""
        return self.logs / f"app-{app_id}.access.log"

    def audit_log(self, app_id: int) -> Path:
        """An app's ModSecurity audit log: one JSON object per flagged or blocked request."""
        return self.logs / f"app-{app_id}.audit.log"


class EdgeRejected(Exception):
    """nginx -t refused a configuration; .reason holds nginx's message (trimmed, no paths of secrets), .app_id the
    app whose files nginx named (its server block, its rules or one of its certificates), when it named one."""

    def __init__(self, reason: str, app_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.app_id = app_id


# ---------------------------------------------------------------------------------------------------- checks


def _hostname(name: str) -> str:
    if not isinstance(name, str) or len(name) > 253:
        raise ValueError(f"not a plain DNS name: {name!r}")
    lowered = name.lower()
    if not all(_LABEL.fullmatch(label) for label in lowered.split(".")) or lowered.replace(".", "").isdigit():
        raise ValueError(f"not a plain DNS name: {name!r}")
    return lowered


def _address(value: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(value)
    except (ValueError, TypeError):
        raise ValueError(f"{what} is not an IP literal: {value!r}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise ValueError(f"{what} carries a zone: {value!r}")
    return address


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


def _whole(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be a whole number from {low} to {high}: {value!r}")
    return value


def _path(path: Path, what: str) -> str:
    text = str(path)
    if not _SAFE_PATH.fullmatch(text) or "/../" in f"{text}/":
        raise ValueError(f"{what} must be an absolute path of plain characters: {text!r}")
    return text


def check_layout(layout: Layout) -> None:
    _path(layout.root, "the edge root")
    if _address(layout.listen, "listen").version != 4:
        raise ValueError(f"listen must be an IPv4 address: {layout.listen!r}")
    if layout.listen_v6 is not None and _address(layout.listen_v6, "listen_v6").version != 6:
        raise ValueError(f"listen_v6 must be an IPv6 address: {layout.listen_v6!r}")
    _whole(layout.http_port, 1, 65535, "http_port")
    _whole(layout.https_port, 1, 65535, "https_port")
    if layout.http_port == layout.https_port:
        raise ValueError("http_port and https_port must differ")
    _whole(layout.rate_per_second, 1, 1_000_000, "rate_per_second")
    _whole(layout.burst, 0, 1_000_000, "burst")
    _whole(layout.connections_per_client, 1, 65535, "connections_per_client")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", layout.worker_user):
        raise ValueError(f"not a user name: {layout.worker_user!r}")
    if layout.challenge_fallback is not None and not _FALLBACK.fullmatch(layout.challenge_fallback):
        raise ValueError(f"challenge_fallback must be http(s)://host[:port]: {layout.challenge_fallback!r}")


@dataclass(frozen=True)
class _Checked:
    """A site once every value it puts into a configuration has been checked and normalised."""

    app_id: int
    hostnames: tuple[str, ...]
    origin: str  # host:port, brackets around IPv6
    origin_tls: bool
    waf: bool
    paranoia: int
    excluded_rules: tuple[int, ...]
    certificates: tuple[tuple[str, str, str], ...]  # hostname, chain path, key path


def _check_site(site: Site) -> _Checked:
    app_id = _whole(site.app_id, 1, 2**53, "app_id")
    if isinstance(site.hostnames, str) or not site.hostnames:
        raise ValueError(f"app {app_id}: hostnames must be a non-empty sequence of names")
    hostnames = tuple(dict.fromkeys(_hostname(name) for name in site.hostnames))
    origin = f"{_host(_address(site.origin_ip, 'origin_ip'))}:{_whole(site.origin_port, 1, 65535, 'origin_port')}"
    paranoia = _whole(site.paranoia, 1, 4, "paranoia")
    excluded = tuple(sorted({_whole(rule, 1, 99_999_999, "an excluded rule id") for rule in site.excluded_rules}))
    certificates: list[tuple[str, str, str]] = []
    for certificate in site.certificates:
        name = _hostname(certificate.hostname)
        if name not in hostnames:
            raise ValueError(f"app {app_id}: a certificate for {name}, which is not one of its hostnames")
        if any(name == seen for seen, _, _ in certificates):
            raise ValueError(f"app {app_id}: two certificates for {name}")
        certificates.append((name, _path(certificate.fullchain, "a certificate chain"),
                             _path(certificate.key, "a certificate key")))
    return _Checked(app_id, hostnames, origin, bool(site.origin_tls), bool(site.waf), paranoia, excluded,
                    tuple(certificates))


def _check_sites(sites: Sequence[Site]) -> list[_Checked]:
    checked = [_check_site(site) for site in sites]
    apps: set[int] = set()
    names: dict[str, int] = {}
    for site in checked:
        if site.app_id in apps:
            raise ValueError(f"app {site.app_id} is given twice")
        apps.add(site.app_id)
        for name in site.hostnames:
            if name in names:  # nginx would warn and serve one of them; the caller must choose
                raise ValueError(f"{name} belongs to both app {names[name]} and app {site.app_id}")
            names[name] = site.app_id
    return checked


# ---------------------------------------------------------------------------------------------------- render


def _listen(layout: Layout, port: int, extra: str = "") -> str:
    lines = [f"listen {layout.listen}:{port}{extra};"]
    if layout.listen_v6 is not None:
        lines.append(f"listen [{layout.listen_v6}]:{port}{extra};")
    return "\n".join(lines)


def _block(head: str, *parts: str) -> str:
    """An nginx block: head { parts, each indented one level }."""
    inner = "\n".join(textwrap.indent(part, "    ") for part in parts)
    return f"{head} {{\n{inner}\n}}"


def _hash_sizes(sites: Sequence[_Checked]) -> tuple[int, int]:
    """server_names_hash_max_size and _bucket_size large enough for every name (nginx refuses to start else)."""
    names = sum(len(site.hostnames) for site in sites)
    longest = max((len(name) for site in sites for name in site.hostnames), default=0)
    bucket = 64
    while bucket < longest + 32:  # one element: a pointer, the name and its length, aligned; plus the end mark
        bucket *= 2
    size = 512
    while size < 2 * names:
        size *= 2
    return size, bucket


def _main_conf(layout: Layout, directory: Path, sites: Sequence[_Checked]) -> str:
    root = _path(layout.root, "the edge root")
    here = _path(directory, "the configuration directory")
    hash_size, hash_bucket = _hash_sizes(sites)
    waf = any(site.waf for site in sites)
    crs = f"    modsecurity_rules_file {here}/modsec/base.conf;\n" if waf else ""
    defaults = textwrap.indent("# Unknown hosts: never proxied.\n" + _block(
        "server", _listen(layout, layout.http_port, " default_server"), "server_name _;", _challenge(layout),
        _block("location /", "return 404;")) + "\n\n" + _block(
        "server", _listen(layout, layout.https_port, " ssl default_server"), "server_name _;",
        "ssl_reject_handshake on;"), "    ")
    includes = "".join(f"    include {here}/sites/app-{site.app_id}.conf;\n" for site in sites)
    files = 8192 + 4 * len(sites)  # each app holds two log files open in every worker
    return f"""# Rendered by Cloudlet (edge/nginx.py); a new generation replaces this one on every change.
load_module {MODSECURITY_MODULE};
# Workers parse hostile requests, so they run unprivileged; the master (root) opens logs and keys for them.
user {layout.worker_user};
worker_processes auto;
worker_rlimit_nofile {files};
worker_shutdown_timeout 30s;
pid {root}/nginx.pid;
lock_file {root}/nginx.lock;
# notice: apply() reads the outcome of a reload here
error_log {root}/logs/error.log notice;
# ModSecurity's audit timestamps are local time; traffic() reads them as UTC
env TZ=UTC;

events {{
    worker_connections 4096;
}}

http {{
    default_type application/octet-stream;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30s;
    client_header_timeout 15s;
    client_body_timeout 30s;
    send_timeout 60s;
    client_max_body_size 16m;
    server_names_hash_max_size {hash_size};
    server_names_hash_bucket_size {hash_bucket};

    client_body_temp_path {root}/temp/body;
    proxy_temp_path {root}/temp/proxy;
    fastcgi_temp_path {root}/temp/fastcgi;
    uwsgi_temp_path {root}/temp/uwsgi;
    scgi_temp_path {root}/temp/scgi;

    log_format cloudlet_edge escape=json '{{"t":$msec,"status":$status,"client":"$remote_addr",'
        '"method":"$request_method","uri":"$request_uri","host":"$host","bytes":$body_bytes_sent,'
        '"seconds":$request_time,"upstream":"$upstream_status"}}';
    access_log {root}/logs/default.access.log cloudlet_edge;

    # The DDoS layer: per client address, before anything else runs for the request.
    limit_req_zone $binary_remote_addr zone=cloudlet_edge_rate:20m rate={layout.rate_per_second}r/s;
    limit_conn_zone $binary_remote_addr zone=cloudlet_edge_conn:20m;
    limit_req zone=cloudlet_edge_rate{f" burst={layout.burst} nodelay" if layout.burst else ""};
    limit_conn cloudlet_edge_conn {layout.connections_per_client};
    limit_req_status 429;
    limit_conn_status 429;

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:cloudlet_edge_tls:20m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;

    proxy_http_version 1.1;
    proxy_connect_timeout 5s;
    proxy_send_timeout 60s;
    proxy_read_timeout 60s;
    proxy_ssl_verify off;
    proxy_ssl_server_name on;
    proxy_ssl_name $host;
    proxy_ssl_session_reuse on;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $cloudlet_edge_connection;
    map $http_upgrade $cloudlet_edge_connection {{  # WebSockets pass; other requests keep the upstream alive
        default upgrade;
        "" "";
    }}

    modsecurity off;
{crs}
{defaults}

{includes}}}
"""


def _challenge(layout: Layout) -> str:
    challenges = _path(layout.challenge_dir, "the challenge directory")
    if layout.challenge_fallback is None:
        return "# ACME http-01: before any WAF rule, for every hostname\n" + _block(
            "location ^~ /.well-known/acme-challenge/", "modsecurity off;", "default_type text/plain;",
            f"alias {challenges}/;")
    return ("# ACME http-01: before any WAF rule, for every hostname; a token this edge does not hold is asked\n"
            "# of the API (an order another machine's worker runs)\n" + _block(
                "location ^~ /.well-known/acme-challenge/", "modsecurity off;", "default_type text/plain;",
                f"alias {challenges}/;", "error_page 404 = @cloudlet_acme;") + "\n"
            + _block("location @cloudlet_acme", "modsecurity off;", f"proxy_pass {layout.challenge_fallback};"))


def _server_body(layout: Layout, here: str, site: _Checked) -> list[str]:
    root = _path(layout.root, "the edge root")
    scheme = "https" if site.origin_tls else "http"
    rules = (f"modsecurity on;\nmodsecurity_rules_file {here}/modsec/app-{site.app_id}.conf;"
             if site.waf else "modsecurity off;")
    return [f"access_log {root}/logs/app-{site.app_id}.access.log cloudlet_edge;", rules,
            _block("location /", f"proxy_pass {scheme}://cloudlet_app_{site.app_id};")]


def _site_conf(layout: Layout, here: str, site: _Checked) -> str:
    body = _server_body(layout, here, site)
    blocks = [f"# app {site.app_id}\n"
              + _block(f"upstream cloudlet_app_{site.app_id}", f"server {site.origin};", "keepalive 16;"),
              _block("server", _listen(layout, layout.http_port), f"server_name {' '.join(site.hostnames)};",
                     _challenge(layout), *body)]
    for name, chain, key in site.certificates:
        blocks.append(_block("server", _listen(layout, layout.https_port, " ssl http2"), f"server_name {name};",
                             f"ssl_certificate {chain};", f"ssl_certificate_key {key};", *body))
    return "\n\n".join(blocks) + "\n"


def _base_rules(layout: Layout) -> str:
    root = _path(layout.root, "the edge root")
    # the operator's own exclusions around the CRS, as Debian's owasp-crs.load has them; libmodsecurity 3 knows
    # no IncludeOptional, so a file that is not there is left out here
    before = f"Include {CRS_LOCAL_BEFORE}\n" if CRS_LOCAL_BEFORE.is_file() else ""
    after = f"Include {CRS_LOCAL_AFTER}\n" if CRS_LOCAL_AFTER.is_file() else ""
    return f"""# Shared by every app with the WAF on: Debian's recommended ModSecurity settings
# (/etc/nginx/modsecurity.conf) with our paths, then the OWASP CRS as Debian loads it (owasp-crs.load).
# The engine, the audit log and the paranoia level are each app's own (app-<id>.conf).
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\\+|/)|text/)xml" \\
    "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" \\
    "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyLimit 13107200
SecRequestBodyNoFilesLimit 131072
SecRequestBodyLimitAction Reject
SecRequestBodyJsonDepthLimit 512
SecArgumentsLimit 1000
SecRule &ARGS "@ge 1000" \\
    "id:200007,phase:2,t:none,log,deny,status:400,severity:2,\\
    msg:'Failed to fully parse request body due to large argument count'"
SecRule REQBODY_ERROR "!@eq 0" \\
    "id:200002,phase:2,t:none,log,deny,status:400,severity:2,\\
    msg:'Failed to parse request body.',logdata:'%{{reqbody_error_msg}}'"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" \\
    "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation'"
SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" \\
    "id:200004,phase:2,t:none,log,deny,msg:'Multipart parser detected a possible unmatched boundary.'"
SecPcreMatchLimit 1000
SecPcreMatchLimitRecursion 1000
SecRule TX:/^MSC_/ "!@streq 0" \\
    "id:200005,phase:2,t:none,deny,msg:'ModSecurity internal error flagged: %{{MATCHED_VAR_NAME}}'"
SecResponseBodyAccess On
SecResponseBodyMimeType text/plain text/html text/xml
SecResponseBodyLimit 524288
SecResponseBodyLimitAction ProcessPartial
SecTmpDir {root}/modsec-data
SecDataDir {root}/modsec-data
SecArgumentSeparator &
SecCookieFormat 0
SecUnicodeMapFile {UNICODE_MAPPING} 20127
SecStatusEngine Off

Include {CRS_SETUP}
{before}Include {CRS_RULES}/*.conf
{after}"""


def _app_rules(layout: Layout, site: _Checked) -> str:
    root = _path(layout.root, "the edge root")
    removed = "".join(f"SecRuleRemoveById {rule}\n" for rule in site.excluded_rules)
    # Parts A and H only: no request headers or bodies (cookies, credentials) in the audit log.
    return f"""# app {site.app_id}: the shared CRS (base.conf) runs after these, so the paranoia level is set first
SecRuleEngine On
SecAuditEngine RelevantOnly
SecAuditLogType Serial
SecAuditLogFormat JSON
SecAuditLogParts AHZ
SecAuditLog {root}/logs/app-{site.app_id}.audit.log
SecAction "id:{PARANOIA_RULE_ID},phase:1,pass,nolog,t:none,setvar:tx.paranoia_level={site.paranoia}"
{removed}"""


def render(layout: Layout, sites: Sequence[Site], *, directory: Path | None = None) -> dict[str, str]:
    """The edge's configuration files (relative path -> text) for these sites."""
    # The files name each other by absolute path under `directory`: apply() renders each configuration for the
    # generation directory it will be served from; without one, for root/config/current.
    check_layout(layout)
    checked = _check_sites(sites)
    here_path = directory if directory is not None else layout.root / "config" / "current"
    here = _path(here_path, "the configuration directory")
    files = {"nginx.conf": _main_conf(layout, here_path, checked)}
    if any(site.waf for site in checked):
        files["modsec/base.conf"] = _base_rules(layout)
    for site in checked:
        files[f"sites/app-{site.app_id}.conf"] = _site_conf(layout, here, site)
        if site.waf:
            files[f"modsec/app-{site.app_id}.conf"] = _app_rules(layout, site)
    return files


# ---------------------------------------------------------------------------------------------------- apply


def _user_ids(name: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"the worker user {name} does not exist") from None
    return entry.pw_uid, entry.pw_gid


def reachable_by(path: Path, user: str) -> bool:
    """Whether user may walk down to path (search permission on each directory above it and on it)."""
    uid, gid = _user_ids(user)
    if uid == 0:
        return True
    groups = set(os.getgrouplist(user, gid))
    current = Path("/")
    for part in (*path.resolve().parts[1:], None):
        info = current.stat()
        if info.st_uid == uid:
            allowed = info.st_mode & 0o100
        elif info.st_gid in groups:
            allowed = info.st_mode & 0o010
        else:
            allowed = info.st_mode & 0o001
        if not allowed:
            return False
        if part is not None:
            current = current / part
    return True


def prepare(layout: Layout) -> None:
    """The layout's directories, owned so that nginx's workers can write what they write at run time."""
    uid, gid = _user_ids(layout.worker_user)
    # logs/ stays root's: the master opens every log (access, error, ModSecurity's audit logs) and the workers
    # write through its descriptors; a directory they could write would let a subverted worker plant a symlink
    # that the root master follows at the next reload. temp/'s subdirectories nginx makes and gives them itself.
    for folder in (layout.root, layout.root / "config", layout.challenge_dir, layout.root / "temp", layout.logs):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    data = layout.root / "modsec-data"  # ModSecurity's temporary files and collections, written by the workers
    data.mkdir(exist_ok=True)
    if os.geteuid() == 0:  # otherwise nginx cannot change users either: its workers run as we do
        os.chown(data, uid, gid)
    data.chmod(0o700)
    # nginx's master opens every app's two logs (and so does `nginx -t`): 1,000 apps need more than 1,024 files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))


@contextlib.contextmanager
def applying(layout: Layout) -> Iterator[None]:
    """One apply at a time on a layout, across threads and processes."""
    with (layout.root / ".apply.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def current_generation(layout: Layout) -> Path | None:
    try:
        target = Path(os.readlink(layout.conf))
    except OSError:
        return None
    return (layout.root / target).parent


def trimmed(output: str, layout: Layout) -> str:
    """nginx's first complaint, without timestamps, our directory names or the config file it was in."""
    lines = [line for line in output.splitlines() if "[emerg]" in line or "[alert]" in line or "[crit]" in line]
    line = lines[0] if lines else (output.strip().splitlines() or ["nginx refused the configuration"])[-1]
    line = re.sub(r"^(?:\d{4}/\d\d/\d\d \d\d:\d\d:\d\d )?(?:nginx: )?\[\w+\] (?:\d+#\d+: )?", "", line)
    line = re.sub(r" in \S+:\d+\s*$", "", line)
    line = line.replace(f"{layout.root}/", "")
    return line.strip()[:REASON_CHARS]


_APP_FILE = re.compile(r"/(?:sites|modsec)/app-(\d+)\.conf\b")


def culprit(output: str, sites: Sequence[Site]) -> int | None:
    """The app whose file nginx's complaint names, if one of these sites'."""
    ids = {site.app_id for site in sites}
    named = _APP_FILE.search(output)
    if named is not None and int(named.group(1)) in ids:
        return int(named.group(1))
    for site in sites:
        if any(f'"{path}"' in output for kept in site.certificates for path in (kept.fullchain, kept.key)):
            return site.app_id
    return None


def _validate(layout: Layout, conf: Path, sites: Sequence[Site], seconds: float) -> None:
    try:
        checked = subprocess.run(  # noqa: S603  # our fixed binary, paths we made
            [str(NGINX), "-t", "-q", "-p", f"{layout.root}/", "-c", str(conf)], cwd=layout.root,
            capture_output=True, text=True, timeout=max(1.0, min(seconds, NGINX_T_SECONDS)), check=False,
            env=nginx_env())
    except subprocess.TimeoutExpired:
        raise EdgeRejected(f"nginx -t did not finish within {seconds:.0f} s") from None
    if checked.returncode != 0:
        output = checked.stderr + checked.stdout
        raise EdgeRejected(trimmed(output, layout), culprit(output, sites))


def nginx_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC", "LANG": "C"}


def master_pid(layout: Layout) -> int | None:
    """The pid of the nginx master running this layout, from its pid file, checked against /proc."""
    try:
        pid = int(layout.pid_file.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return None
    # a pid file outlives its process, and its number may since belong to another one
    return pid if "nginx: master process" in command and str(layout.conf) in command else None


def _await_reload(layout: Layout, master: int, old_workers: list[int], since: int, deadline: float) -> str | None:
    """Why the master refused the new configuration, or None once new workers run and the old ones have stopped
    accepting (they close their listening sockets as they start shutting down)."""
    seen = ""
    while time.monotonic() < deadline:
        try:
            with layout.error_log.open("rb") as handle:
                handle.seek(since)
                seen = handle.read().decode(errors="replace")
        except OSError:
            seen = ""
        reloading = seen.find("reconfiguring")
        if reloading >= 0:
            after = seen[reloading:]
            # the master's own lines: a busy worker may log an alert meanwhile
            failures = [line for line in after.splitlines()
                        if f" {master}#" in line and ("[emerg]" in line or "[alert]" in line)]
            binding = [line for line in failures if "bind()" in line and "still could not" not in line]
            if len(failures) > len(binding):  # nginx tries a taken port five times before it gives up
                return trimmed(binding[-1] if binding else failures[-1], layout)
            if "start worker process" in after and not any(_accepting(pid, master) for pid in old_workers):
                return None
        time.sleep(0.02)
    raise TimeoutError(f"nginx did not say how its reload went in time (last: {trimmed(seen, layout) or 'nothing'})")


def processes() -> Iterator[tuple[int, str, int, int]]:
    """Every process as (pid, state, parent pid, process group), from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after the command, which may hold spaces
        yield int(entry.name), fields[0], int(fields[1]), int(fields[2])


def _accepting(pid: int, master: int) -> bool:
    """Whether a worker of master still takes new connections (nginx retitles one that is shutting down)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes()
        parent = next((ppid for found, state, ppid, _ in processes() if found == pid and state != "Z"), None)
    except OSError:
        return False
    return parent == master and b"shutting down" not in title


def _reload(layout: Layout, deadline: float) -> str | None:
    """Make a running master re-read root/nginx.conf; why it refused, or None (also when none runs). Raises
    TimeoutError when the master has not said by the deadline."""
    pid = master_pid(layout)
    if pid is None:
        return None
    try:
        since = layout.error_log.stat().st_size
    except OSError:
        since = 0
    workers = [found for found, state, ppid, _ in processes() if ppid == pid and state != "Z"]
    # SIGHUP is what `nginx -s reload` sends through the pid file; sent directly, it spares a second parse of
    # the whole configuration (and of the CRS) just to find the pid file.
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return None
    return _await_reload(layout, pid, workers, since, deadline)


def _point_at(layout: Layout, generation: Path) -> None:
    fresh = layout.root / f".nginx.conf.{os.getpid()}.{threading.get_ident()}"
    with contextlib.suppress(FileNotFoundError):
        fresh.unlink()
    fresh.symlink_to(generation.relative_to(layout.root) / "nginx.conf")
    os.replace(fresh, layout.conf)  # rename: readers see the old configuration or the new, never neither


def _write_tree(directory: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        target.write_text(text)


def _same_tree(directory: Path, files: dict[str, str]) -> bool:
    present = {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}
    if present != set(files):
        return False
    return all((directory / relative).read_text() == text for relative, text in files.items())


def apply(layout: Layout, sites: Sequence[Site], *, seconds: float = 30.0) -> None:
    """Write the configuration for these sites, validate the whole of it with `nginx -t`, and only then put it
    in place and reload a running edge. A configuration nginx rejects raises EdgeRejected and leaves the
    configuration in place, and the edge serving it, untouched; ValueError for sites out of shape, before
    anything is written; TimeoutError when a running edge has not taken a valid configuration by the deadline
    (it stays in place). Idempotent: the same sites again change nothing."""
    deadline = time.monotonic() + seconds
    check_layout(layout)
    _check_sites(sites)  # before anything is written
    prepare(layout)
    with applying(layout):
        current = current_generation(layout)
        if current is not None and current.is_dir() and _same_tree(current, render(layout, sites, directory=current)):
            return
        generation = layout.root / "config" / f"{time.time_ns():016x}"
        generation.mkdir(mode=0o750)
        try:
            _write_tree(generation, render(layout, sites, directory=generation))
            _validate(layout, generation / "nginx.conf", sites, deadline - time.monotonic())
        except BaseException:
            shutil.rmtree(generation, ignore_errors=True)
            raise
        _point_at(layout, generation)
        # past this point the configuration has passed `nginx -t` and is in place: if the master does not say in
        # time how its reload went (TimeoutError), it stays, as the master may yet load it
        refused = _reload(layout, deadline)
        if refused is not None:  # a restart must serve what the running master kept
            if current is not None and current.is_dir():
                _point_at(layout, current)
            else:
                layout.conf.unlink(missing_ok=True)
            shutil.rmtree(generation, ignore_errors=True)
            raise EdgeRejected(refused)
        for old in (layout.root / "config").iterdir():
            if old != generation and _GENERATION.fullmatch(old.name):
                shutil.rmtree(old, ignore_errors=True)
        log.info("edge configuration applied", sites=len(sites), generation=generation.name)
