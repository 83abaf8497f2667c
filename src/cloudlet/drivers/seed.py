"""The NoCloud seed: the contract between Cloudlet and any guest image (cloud-init or the tiny image).

Scalars are written as YAML single-quoted strings so that cloud-init and the tiny image's small
shell parser read the same value ('' stands for one quote).
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import NamedTuple

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from cloudlet.drivers.base import GuestFailed, GuestReady, GuestSpec, GuestSshTrust

TRUST_DIR = "/etc/ssh/cloudlet"
CA_KEYS_PATH = f"{TRUST_DIR}/trusted_ca_keys"
REVOKED_KEYS_PATH = f"{TRUST_DIR}/revoked_keys"
PRINCIPALS_PATH = f"{TRUST_DIR}/principals"
SSHD_CA_CONFIG = f"""\
# Cloudlet's SSH certificate authority: certificates it signed are accepted for the login names they carry,
# when the principals command says the certificate is for this server; revoked ones are refused.
TrustedUserCAKeys {CA_KEYS_PATH}
RevokedKeys {REVOKED_KEYS_PATH}
AuthorizedPrincipalsCommand {PRINCIPALS_PATH} %u %i
AuthorizedPrincipalsCommandUser nobody
"""
READY_MARK = "CLOUDLET_READY"
READY_LINE = re.compile(r"CLOUDLET_READY((?: [a-z_-]+=\S*)*)")


class Seed(NamedTuple):
    """The three NoCloud files."""

    meta_data: str
    user_data: str
    network_config: str | None


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def principals_command(trust: GuestSshTrust) -> str:
    """The script sshd runs as AuthorizedPrincipalsCommand with the login name and the certificate's key id: it
    names the login as an allowed principal only for a key id of this server's project."""
    return ("#!/bin/sh\n# $1: the login name asked for; $2: the key id of the certificate presented\n"
            f"case \"$2\" in\n  {'|'.join(trust.key_ids)}) printf '%s\\n' \"$1\" ;;\nesac\n")


def _trust_files(trust: GuestSshTrust) -> list[str]:
    files = [(CA_KEYS_PATH, "0644", trust.ca_keys.encode()), (REVOKED_KEYS_PATH, "0644", trust.revoked_keys),
             (PRINCIPALS_PATH, "0755", principals_command(trust).encode()),
             ("/etc/ssh/sshd_config.d/70-cloudlet-ca.conf", "0644", SSHD_CA_CONFIG.encode())]
    lines = ["write_files:"]
    for path, mode, data in files:
        lines += [f"- path: {_quote(path)}", f"  permissions: {_quote(mode)}", "  encoding: b64",
                  f"  content: {base64.b64encode(data).decode()}"]
    return lines


def seed_for(spec: GuestSpec) -> Seed:
    """The NoCloud files that apply spec's hostname, root password, keys and static address."""
    meta = f"instance-id: {_quote(spec.instance_id)}\nlocal-hostname: {_quote(spec.hostname)}\n"
    user = ["#cloud-config", f"hostname: {_quote(spec.hostname.split('.')[0])}"]
    if "." in spec.hostname:
        user.append(f"fqdn: {_quote(spec.hostname)}")
    user += ["preserve_hostname: false", "disable_root: false"]
    if spec.root_password is not None:
        user += ["ssh_pwauth: true", "chpasswd:", "  expire: false", "  users:", "  - name: root",
                 f"    password: {_quote(spec.root_password)}", "    type: text"]
    if spec.ssh_authorized_keys:
        user.append("ssh_authorized_keys:")
        user += [f"- {_quote(key)}" for key in spec.ssh_authorized_keys]
    if spec.ssh_trust is not None:
        user += _trust_files(spec.ssh_trust)
    network = None
    if spec.network is not None:
        net = spec.network
        lines = ["version: 2", "ethernets:", "  eth0:", "    match:", f"      macaddress: {_quote(spec.mac_address)}",
                 "    set-name: eth0", "    addresses:", f"    - {_quote(net.address)}"]
        if net.address6:
            lines.append(f"    - {_quote(net.address6)}")
        routes = [gw for gw in (net.gateway, net.gateway6) if gw]
        if routes:
            lines.append("    routes:")
            for gw in routes:
                lines += [f"    - to: {'0.0.0.0/0' if ':' not in gw else '::/0'}", f"      via: {_quote(gw)}"]
        if net.nameservers:
            lines += ["    nameservers:", "      addresses:"] + [f"      - {_quote(ns)}" for ns in net.nameservers]
        network = "\n".join(lines) + "\n"
    return Seed(meta, "\n".join(user) + "\n", network)


def build_seed_iso(seed: Seed, target: Path) -> Path:
    """Write seed as an ISO 9660 image labelled "cidata" (what NoCloud looks for) at target.

    In-process with pycdlib (a few milliseconds, where starting xorriso took a tenth of a second of every
    build); Rock Ridge and Joliet carry the lowercase names NoCloud reads. Raises GuestFailed when the
    image cannot be written (retrying will not help).
    """
    files = [("meta-data", seed.meta_data), ("user-data", seed.user_data)]
    if seed.network_config is not None:
        files.append(("network-config", seed.network_config))
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    try:
        for name, text in files:
            data = text.encode()
            iso.add_fp(io.BytesIO(data), len(data), f"/{name.upper().replace('-', '_')}.;1", rr_name=name,
                       joliet_path=f"/{name}")
        iso.write(str(target))
    except (PyCdlibException, OSError) as error:
        target.unlink(missing_ok=True)
        raise GuestFailed(f"could not write the seed image: {error}") from error
    finally:
        iso.close()
    return target


def parse_ready(line: str) -> GuestReady | None:
    """The readiness announcement in one console line, or None when the line is something else."""
    match = READY_LINE.search(line)
    if match is None:
        return None
    fields = dict(part.split("=", 1) for part in match.group(1).split())
    return GuestReady(
        instance_id=fields.get("instance-id", ""),
        hostname=fields.get("hostname", ""),
        address=fields.get("address") or None,
        authorized_keys=int(fields.get("keys", "0") or 0),
        root_password_set=fields.get("password") == "set",
    )


def ready_in(console: str) -> GuestReady | None:
    """The first readiness announcement among the console's finished lines (those a newline ends).

    The line being written is left out: a console read while the guest is still printing its READY line
    would otherwise give that line's first half, with an empty instance-id and no password.
    """
    finished = console[: console.rfind("\n") + 1]
    return next((ready for ready in map(parse_ready, finished.splitlines()) if ready is not None), None)


def ready_line(ready: GuestReady) -> str:
    """The console line a guest prints once its seed is applied (what the fake driver prints too)."""
    return (f"{READY_MARK} instance-id={ready.instance_id} hostname={ready.hostname} address={ready.address or ''} "
            f"keys={ready.authorized_keys} password={'set' if ready.root_password_set else 'unset'}")
