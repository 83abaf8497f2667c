"""Running nft for Cloudlet's own tables: a whole table written in one transaction, read back as JSON, and
recognised by the digest of its script that Cloudlet keeps as the table's comment.

A script starts by declaring and deleting its table, so `nft -f` swaps the old rule set for the new one in a
single transaction: a packet meets either the old rules or the new, never a half-written table. Every call
has a deadline and may run in a network namespace (tests run real tables in namespaces of their own).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from typing import Any, NamedTuple

from cloudlet.drivers.base import GuestFailed

NFT_SECONDS = 30.0


class TableMark(NamedTuple):
    """What identifies a table Cloudlet wrote: the digest of its script (kept as the table's comment) and how
    many rules it has."""

    digest: str
    rules: int


def chain(name: str, lines: list[str]) -> str:
    """A chain of a table's script, one statement a line."""
    return f"  chain {name} {{\n" + "".join(f"    {line}\n" for line in lines) + "  }"


def rules_in(body: str) -> int:
    """How many rules the chains of body hold (their base-chain declarations aside)."""
    return sum(line.startswith("    ") and not line.startswith("    type ") for line in body.splitlines())


def mark_of(body: str, rules: int | None = None) -> TableMark:
    """The mark of a table made of these chains (and sets and maps: then say how many rules it has)."""
    return TableMark(hashlib.sha256(body.encode()).hexdigest()[:32], rules_in(body) if rules is None else rules)


def script(table: str, body: str | None) -> str:
    """The nft script that makes `inet table` hold exactly these chains (its mark in the table's comment); with
    no body, the script removes the table (a table that is not there is fine)."""
    head = f"table inet {table}\ndelete table inet {table}\n"
    if body is None:
        return head
    return f'{head}table inet {table} {{\n  comment "cloudlet {mark_of(body).digest}"\n{body}\n}}\n'


def run(namespace: str | None, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """nft with these arguments (in a network namespace, for tests), within its deadline."""
    command = ["nft", *args]
    if namespace is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    try:
        return subprocess.run(command, input=stdin, capture_output=True, text=True,  # noqa: S603
                              timeout=NFT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GuestFailed(f"nft did not answer: {error}") from error


def write(text: str, *, namespace: str | None = None) -> None:
    """Run an nft script in one transaction; GuestFailed with nft's reason when it refuses (nothing changed)."""
    done = run(namespace, "-f", "-", stdin=text)
    if done.returncode != 0:
        raise GuestFailed(f"nft refused the firewall: {done.stderr.strip()[-1000:]}")


def listed(table: str, *, namespace: str | None = None, terse: bool = False) -> list[dict[str, Any]] | None:
    """The objects of `inet table` as nft's JSON lists them (tersely: without the sets' elements); None when
    there is no such table."""
    found = run(namespace, *(("-t",) if terse else ()), "-j", "list", "table", "inet", table)
    if found.returncode != 0:
        return None
    objects: list[dict[str, Any]] = json.loads(found.stdout).get("nftables", [])
    return objects


def live_mark(table: str, *, namespace: str | None = None) -> TableMark | None:
    """The mark of `inet table` as the kernel holds it now: its comment's digest and its rule count (rules
    flushed, added or removed behind Cloudlet's back change the count); None when there is no such table, or
    one Cloudlet did not write."""
    # terse: without the sets' elements; nft 1.0's JSON leaves the table's comment out
    text = run(namespace, "-t", "list", "table", "inet", table)
    if text.returncode != 0:
        return None
    found = re.search(r'^\s*comment "cloudlet (\w+)"', text.stdout, re.MULTILINE)
    objects = listed(table, namespace=namespace, terse=True)
    if found is None or objects is None:
        return None
    return TableMark(found.group(1), sum("rule" in item for item in objects))
