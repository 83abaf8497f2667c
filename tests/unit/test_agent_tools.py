"""Which of the agent's calls only read (they run at once) and which wait for the customer's approval, and how
fractions of a cent become whole-cent debits."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudlet.agent import metering, tools


@pytest.mark.parametrize("command", [
    "hostname", "systemctl is-active ssh", "systemctl status nginx", "journalctl -u nginx -n 50", "df -h",
    "cat /etc/nginx/nginx.conf", "ip addr", "ss -tlnp", "tail -n 20 /var/log/syslog", "nginx -t", "dpkg -l",
])
def test_reading_commands_run_at_once(command: str) -> None:
    assert tools.read_only(command)
    assert tools.needs_approval("shell", json.dumps({"command": command})) is None


@pytest.mark.parametrize("command", [
    "rm -rf /srv", "systemctl restart nginx", "systemctl stop ssh", "ip addr add 192.0.2.1/24 dev eth0",
    "cat /etc/passwd > /tmp/x", "hostname; reboot", "echo $(id)", "ls `whoami`", "cat a | sh", "apt install vim",
    "journalctl --vacuum-size=1M", "sed -i s/a/b/ /etc/hosts", "tail -f /var/log/syslog && reboot", "",
    "sysctl -w net.ipv4.ip_forward=1", "hostname new-name\n", "ls *",
])
def test_commands_that_may_change_the_server_wait_for_approval(command: str) -> None:
    assert not tools.read_only(command)
    if command.strip():
        assert tools.needs_approval("shell", json.dumps({"command": command})) is not None


def test_edits_always_wait_and_reads_never_do() -> None:
    assert tools.needs_approval("edit_file", "{}") is not None
    assert tools.needs_approval("read_file", json.dumps({"path": "/etc/hosts"})) is None
    assert tools.needs_approval("tail_log", json.dumps({"path": "/var/log/syslog"})) is None
    assert tools.needs_approval("shell", "not json") is None  # run() refuses it as out of shape


@given(st.lists(st.integers(min_value=0, max_value=3_000_000), min_size=1, max_size=30))
def test_whole_cents_are_debited_as_they_accrue_and_the_fraction_at_the_end(steps: list[int]) -> None:
    cost = charged = 0
    for step in steps:
        cost += step
        charged += metering.due_cents(cost, charged, final=False)
        assert charged == cost // metering.MICRO  # never ahead of the usage, never a whole cent behind
    charged += metering.due_cents(cost, charged, final=True)
    assert charged == -(-cost // metering.MICRO)  # the request's usage, to the cent above
    assert metering.due_cents(cost, charged, final=True) == 0  # and never twice
