"""One contract, two drivers: what the worker may rely on from any hypervisor node.

One guest per driver boots for the whole module (under TCG a boot takes about 5 s), so the tests run in
file order: build, idempotent rebuild, power actions, and finally destroy. A second guest is then built
step by step (define, write the seed, start) the way the provisioning workflow records its tasks.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloudlet.drivers.base import (
    BOOT_SEPARATOR,
    CONSOLE_HISTORY_BYTES,
    HISTORY_DROPPED,
    MAX_COMMAND_BYTES,
    AddressFirewall,
    CommandRun,
    ConsoleClosed,
    ConsoleOutput,
    FirewallAction,
    FirewallProtocol,
    FirewallRuleSpec,
    GuestFailed,
    GuestInfo,
    GuestNetwork,
    GuestNotFound,
    GuestSpec,
    GuestState,
    HypervisorDriver,
    ImageNotFound,
    NodeFirewall,
    NodeRuleSpec,
    SerialConsole,
    VncEndpoint,
)
from cloudlet.drivers.fake import FakeDriver
from cloudlet.drivers.seed import parse_ready
from tests import node_table
from tests.contract.conftest import IMAGE, leftovers
from tests.rfb import RfbRefused, ServerInit, handshake, over_socket

BOOT = 90.0  # seconds; generous for TCG on a loaded machine
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheContractSuiteOnly contract@cloudlet"
SPEC = GuestSpec(name="contract-web", image=IMAGE, vcpus=1, memory_mib=256, disk_gib=2, hostname="contract-web",
                 root_password="It's a s3cret!", ssh_authorized_keys=(KEY,), instance_id="i-contract-1",
                 network=GuestNetwork(address="198.51.100.23/24", gateway="198.51.100.1"))
RENAMED = replace(SPEC, hostname="contract-renamed")  # what a reinstall with a new hostname writes
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAISecondFakeKeyForTheContractSuite second@cloudlet"
STAGED = GuestSpec(name="contract-staged", image=IMAGE, vcpus=1, memory_mib=320, disk_gib=3,
                   hostname="contract-staged", ssh_authorized_keys=(KEY, KEY2), instance_id="i-contract-2",
                   network=GuestNetwork(address="198.51.100.24/24", gateway="198.51.100.1"))


@pytest.fixture(scope="module")
def guest(driver: HypervisorDriver) -> str:
    """The module's guest, built and booted once per driver."""
    driver.destroy_guest(SPEC.name)
    driver.create_guest(SPEC)
    return SPEC.name


def test_a_created_guest_boots_and_applies_its_seed(driver: HypervisorDriver, guest: str) -> None:
    ready = driver.wait_ready(guest, BOOT)
    assert ready.instance_id == "i-contract-1"
    assert ready.hostname == "contract-web"
    assert ready.address == "198.51.100.23"
    assert ready.authorized_keys == 1
    assert ready.root_password_set is True
    assert driver.state(guest) == GuestState.RUNNING
    assert "CLOUDLET_READY" in driver.console_output(guest).text


def test_creating_the_same_guest_again_changes_nothing(driver: HypervisorDriver, guest: str) -> None:
    before = driver.console_output(guest).text
    driver.create_guest(SPEC)
    assert [info.name for info in driver.list_guests() if info.name == guest] == [guest]
    assert driver.state(guest) == GuestState.RUNNING
    assert driver.console_output(guest).text.startswith(before)  # not rebooted


def test_defining_the_running_guest_again_changes_nothing(driver: HypervisorDriver, guest: str) -> None:
    before = driver.console_output(guest).text
    driver.define_guest(SPEC)
    with pytest.raises(GuestFailed):
        driver.define_guest(replace(SPEC, memory_mib=512))
    assert driver.hardware(guest) == GuestInfo(guest, GuestState.RUNNING, 1, 256)
    assert driver.console_output(guest).text.startswith(before)  # not restarted


EXTRA_GATEWAY = "198.51.100.254"  # a second pool's gateway in the guests' documentation range


def guest_routes() -> list[str]:
    """The addresses this host routes into the guests' bridge one by one (what write_seed adds)."""
    from cloudlet.drivers.libvirt import host

    shown = subprocess.run(["ip", "-o", "route", "show", "proto", host.ROUTE_PROTO, "dev", host.NETWORK_NAME],
                           check=True, capture_output=True, text=True, timeout=10).stdout
    return [line.split()[0] for line in shown.splitlines()]


@pytest.fixture
def bridge_kept(driver: HypervisorDriver) -> Iterator[None]:
    """The gateway this test gives the real bridge is taken away after it, unless it held it already."""
    if isinstance(driver, FakeDriver):
        yield
        return
    from cloudlet.drivers.libvirt import host

    before = host.bridge_addresses()
    yield
    if EXTRA_GATEWAY not in before and EXTRA_GATEWAY in host.bridge_addresses():
        subprocess.run(["ip", "addr", "del", f"{EXTRA_GATEWAY}/32", "dev", host.NETWORK_NAME], check=True, timeout=10)


def test_the_node_holds_the_gateways_it_serves_and_its_guest_answers_there(
        driver: HypervisorDriver, guest: str, bridge_kept: None) -> None:
    driver.wait_ready(guest, BOOT)
    assert SPEC.network is not None and SPEC.network.gateway is not None
    own, address = SPEC.network.gateway, SPEC.network.address.split("/")[0]
    driver.serve_gateways(frozenset({own, EXTRA_GATEWAY}))
    driver.serve_gateways(frozenset({EXTRA_GATEWAY}))  # again, with less: nothing changes, nothing is taken away
    if isinstance(driver, FakeDriver):
        assert driver.gateways == {own, EXTRA_GATEWAY}
        return
    from cloudlet.drivers.libvirt import host

    assert {own, EXTRA_GATEWAY} <= host.bridge_addresses()
    assert address in guest_routes() and host.routed_to_bridge(address)  # its seed's address, and only it
    # the node reaches the guest at its own address: the guest answers ARP for it with its MAC
    deadline = time.monotonic() + 30
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.sendto(b"cloudlet", (address, 9))  # discard port, into the isolated bridge: only the lookup matters
        neighbours = subprocess.run(["ip", "neigh", "show", address, "dev", host.NETWORK_NAME], check=True,
                                    capture_output=True, text=True, timeout=10).stdout
        if SPEC.mac_address in neighbours.lower():
            break
        assert time.monotonic() < deadline, f"the guest did not answer at {address}: {neighbours!r}"
        time.sleep(0.2)


def test_address_firewalls_replace_each_other_whole(driver: HypervisorDriver) -> None:
    address = SPEC.network.address.split("/")[0] if SPEC.network else ""
    wall = AddressFirewall(address, default_in=FirewallAction.BLOCK,
                           rules=(FirewallRuleSpec(FirewallAction.ALLOW, FirewallProtocol.TCP, ports=(22, 22)),))
    with node_table.held():
        check_firewalls(driver, address, wall)


def check_firewalls(driver: HypervisorDriver, address: str, wall: AddressFirewall) -> None:
    """Apply one firewall, read it back, apply none."""
    driver.apply_firewalls([wall])
    assert driver.firewalls_in_force([wall]) and not driver.firewalls_in_force([])
    counted = driver.firewall_hits()[address]  # one rule and the policy, counted by the node
    assert len(counted.rules) == 1 and all(packets >= 0 for packets, _bytes in (*counted.rules, counted.policy))
    if isinstance(driver, FakeDriver):
        assert driver.firewalls == {address: wall}
        driver.firewalls = {}  # behind its back
    else:  # the node's own table (packets through it: tests/integration/test_firewall_packets.py)
        listed = subprocess.run(["nft", "list", "table", "inet", "cloudlet"], capture_output=True, text=True,
                                timeout=30, check=True).stdout
        assert f"{address} : jump in4_" in listed and f"{address} . 0.0.0.0/0 . tcp . 22 : jump r4_" in listed
        subprocess.run(["nft", "flush", "table", "inet", "cloudlet"], timeout=30, check=True)  # behind its back
    assert not driver.firewalls_in_force([wall])
    driver.apply_firewalls([])
    if isinstance(driver, FakeDriver):
        assert driver.firewalls == {}
    else:
        listed = subprocess.run(["nft", "list", "table", "inet", "cloudlet"], capture_output=True, text=True,
                                timeout=30, check=True).stdout
        assert "jump" not in listed


def test_the_node_firewall_is_written_whole_and_goes_with_its_last_rule(driver: HypervisorDriver) -> None:
    # allow rules only: on the libvirt half this is this machine's own input hook (packets: tests/integration/
    # test_node_firewall_packets.py, in a namespace)
    wall = NodeFirewall((NodeRuleSpec(FirewallAction.ALLOW, FirewallProtocol.TCP, "198.51.100.0/24", (2222, 2222)),),
                        control_sources=("192.0.2.10/32",), control_ports=(22,))
    with node_table.held():
        try:
            driver.apply_node_firewall(wall)
            assert driver.node_firewall_in_force(wall) and not driver.node_firewall_in_force(NodeFirewall())
            if isinstance(driver, FakeDriver):
                assert driver.node_firewall == wall
                driver.node_firewall = None  # behind its back
            else:
                listed = subprocess.run(["nft", "list", "table", "inet", "cloudlet_node"], capture_output=True,
                                        text=True, timeout=30, check=True).stdout
                assert "hook input" in listed and "dport 2222 counter packets 0 bytes 0 accept" in listed
                subprocess.run(["nft", "flush", "table", "inet", "cloudlet_node"], timeout=30, check=True)
            assert not driver.node_firewall_in_force(wall)
        finally:
            driver.apply_node_firewall(NodeFirewall())
    assert driver.node_firewall_in_force(NodeFirewall())
    if not isinstance(driver, FakeDriver):
        assert subprocess.run(["nft", "list", "table", "inet", "cloudlet_node"], capture_output=True,
                              timeout=30, check=False).returncode != 0


def test_the_agent_and_the_ssh_server_are_asked_from_the_node(driver: HypervisorDriver, guest: str) -> None:
    driver.wait_ready(guest, BOOT)
    address = SPEC.network.address.split("/")[0] if SPEC.network else ""
    if isinstance(driver, FakeDriver):  # the fake's guests have both, whatever their image
        assert driver.agent_ping(guest) is True
        assert driver.ssh_banner(guest, address, 1).startswith("SSH-2.0-")
        driver.write_guest_file(guest, "/etc/ssh/cloudlet/revoked_keys", b"KRL", 0o644)
        assert driver.guest_file(guest, "/etc/ssh/cloudlet/revoked_keys") == (b"KRL", 0o644)
    else:  # the tiny image has neither: the channel is there, nobody answers on it, nothing listens on port 22
        began = time.monotonic()
        assert driver.agent_ping(guest) is False
        with pytest.raises(GuestFailed, match="guest agent"):
            driver.write_guest_file(guest, "/etc/ssh/cloudlet/revoked_keys", b"KRL", 0o644)
        with pytest.raises(GuestFailed, match="port 22"):
            driver.ssh_banner(guest, address, 1)
        assert time.monotonic() - began < 30
    with pytest.raises(GuestFailed):
        driver.ssh_banner(guest, "198.51.100.250", 0.5)  # nobody's address on the guests' isolated network
    if not isinstance(driver, FakeDriver):
        with pytest.raises(GuestFailed, match="not routed"):
            driver.ssh_banner(guest, "203.0.113.250", 0.5)  # not routed to the guests: never asked
    with pytest.raises(GuestFailed, match="absolute path"):
        driver.write_guest_file(guest, "etc/passwd", b"", 0o644)
    with pytest.raises(GuestNotFound):
        driver.agent_ping("contract-nobody")
    with pytest.raises(GuestNotFound):
        driver.write_guest_file("contract-nobody", "/etc/motd", b"", 0o644)


def run_in(driver: HypervisorDriver, guest: str, command: str, timeout: float = 20.0, cap: int = 4096) -> CommandRun:
    """What command did in the running guest; on the libvirt half, whose tiny image has no guest agent, the refusal is
    checked and the test skipped."""
    driver.wait_ready(guest, BOOT)
    if isinstance(driver, FakeDriver):
        return driver.run_in_guest(guest, command, timeout, cap)
    with pytest.raises(GuestFailed, match="guest agent"):
        driver.run_in_guest(guest, command, timeout, cap)
    pytest.skip("the tiny image has no guest agent: the command was refused, as it should be")


def test_run_in_guest_prints_the_hostname(driver: HypervisorDriver, guest: str) -> None:
    run = run_in(driver, guest, "hostname")
    assert run == CommandRun(0, b"contract-web\n", False, False, run.seconds)
    assert 0 <= run.seconds < 20
    if isinstance(driver, FakeDriver):
        assert driver.commands[-1] == (guest, "hostname")


def test_run_in_guest_gives_a_failing_exit_as_a_result_with_stderr_in_the_output(driver: HypervisorDriver,
                                                                                   guest: str) -> None:
    assert run_in(driver, guest, "exit 3")[:4] == (3, b"", False, False)
    run = run_in(driver, guest, "cat /contract/no-such-file")
    assert (run.exit_status, run.timed_out) == (1, False)
    assert b"No such file or directory" in run.output  # its stderr, joined to its stdout


def test_run_in_guest_cuts_the_output_at_its_cap(driver: HypervisorDriver, guest: str) -> None:
    run = run_in(driver, guest, "echo " + "x" * 100, cap=10)
    assert run[:4] == (0, b"x" * 10, True, False)
    assert run_in(driver, guest, "echo " + "x" * 9, cap=10)[:4] == (0, b"x" * 9 + b"\n", False, False)  # just fits


def test_run_in_guest_kills_a_command_at_its_timeout(driver: HypervisorDriver, guest: str) -> None:
    run = run_in(driver, guest, "sleep 5", timeout=1)
    assert (run.exit_status, run.timed_out) == (None, True)
    assert 1 <= run.seconds < 5


def test_run_in_guest_refuses_an_empty_or_huge_command_and_an_unknown_guest(driver: HypervisorDriver,
                                                                             guest: str) -> None:
    for command in ("", "  \n", "echo " + "x" * MAX_COMMAND_BYTES):
        with pytest.raises(ValueError, match="command"):
            driver.run_in_guest(guest, command, 5, 1024)  # before the guest is asked: the same on every driver
    with pytest.raises(GuestNotFound):
        driver.run_in_guest("contract-nobody", "hostname", 5, 1024)


def test_a_different_guest_under_the_same_name_is_refused(driver: HypervisorDriver, guest: str) -> None:
    with pytest.raises(GuestFailed):
        driver.create_guest(GuestSpec(**{**SPEC.__dict__, "vcpus": 2}))
    assert driver.state(guest) == GuestState.RUNNING


def test_the_listing_shows_the_guest_with_its_size(driver: HypervisorDriver, guest: str) -> None:
    [info] = [info for info in driver.list_guests() if info.name == guest]
    assert (info.state, info.vcpus, info.memory_mib) == (GuestState.RUNNING, 1, 256)


def test_stats_count_what_the_guest_did(driver: HypervisorDriver, guest: str) -> None:
    stats = driver.stats(guest)
    assert stats.cpu_time_ns > 0
    assert stats.disk_read_bytes > 0  # the kernel and initramfs came off the disk
    assert stats.disk_capacity_bytes == 2 * 1024**3  # the overlay is grown to the plan's disk
    assert 0 < stats.disk_allocation_bytes < 64 * 1024**2  # copy-on-write: the image is not copied
    assert (stats.vcpus, stats.memory_mib) == (1, 256)


def test_shutdown_and_start_again(driver: HypervisorDriver, guest: str) -> None:
    driver.shutdown(guest, timeout=30)
    assert driver.state(guest) == GuestState.STOPPED
    driver.shutdown(guest, timeout=30)  # already off: fine
    assert driver.stats(guest).cpu_time_ns == 0
    driver.start(guest)
    assert driver.wait_ready(guest, BOOT).hostname == "contract-web"
    driver.start(guest)  # already on: fine
    assert driver.state(guest) == GuestState.RUNNING


def test_a_seed_written_while_running_leaves_the_guest_running(driver: HypervisorDriver, guest: str) -> None:
    before = driver.console_output(guest).text
    driver.write_seed(RENAMED)
    assert driver.state(guest) == GuestState.RUNNING
    assert driver.console_output(guest).text.startswith(before)  # not restarted
    assert driver.wait_ready(guest, 1).hostname == "contract-web"  # what this boot applied stays


def test_reboot_comes_back_ready(driver: HypervisorDriver, guest: str) -> None:
    driver.reboot(guest)
    assert driver.wait_ready(guest, BOOT).instance_id == "i-contract-1"
    assert driver.state(guest) == GuestState.RUNNING


def test_the_reboot_applied_the_seed_written_while_running(driver: HypervisorDriver, guest: str) -> None:
    assert driver.wait_ready(guest, BOOT).hostname == "contract-renamed"
    driver.define_guest(RENAMED)  # the guest's spec is now the one its seed was written from
    with pytest.raises(GuestFailed):
        driver.define_guest(SPEC)
    driver.write_seed(SPEC)  # back to the module's spec, for the next boot
    assert driver.state(guest) == GuestState.RUNNING


def separators(output: ConsoleOutput) -> list[str]:
    """How each boot after the first began, from the separator lines of a console history, in order."""
    return [found.group(1) for found in map(BOOT_SEPARATOR.match, output.lines) if found]


def ready_hostnames(output: ConsoleOutput) -> list[str]:
    """The host name of each readiness line in console output, in order (one per boot that got that far)."""
    return [ready.hostname for ready in map(parse_ready, output.lines) if ready is not None]


def after_last_separator(history: ConsoleOutput) -> str:
    """The text of a console history after its last separator line: the current boot's output."""
    last = [line for line in history.lines if BOOT_SEPARATOR.match(line)][-1]
    return history.text[history.text.rindex(last + "\n") + len(last) + 1:]


def print_on_console(driver: HypervisorDriver, name: str, text: str) -> None:
    """Lines a stopped guest printed on its serial console last time it ran (for the bound of its history)."""
    if isinstance(driver, FakeDriver):
        driver.print_console(name, text)
        return
    from cloudlet.drivers.libvirt.guest import LibvirtDriver

    assert isinstance(driver, LibvirtDriver)
    with (driver.console_dir / f"{name}.log").open("a", encoding="utf-8") as log:  # where qemu appends
        log.write(text)


def test_the_console_history_keeps_every_boot_and_the_console_only_the_last(driver: HypervisorDriver,
                                                                            guest: str) -> None:
    current = driver.console_output(guest)  # read first: a guest still printing only makes the history longer
    history = driver.console_history(guest)
    # three boots so far: the build, a start after the shutdown, and the reboot that applied the new seed
    assert separators(history) == ["started", "rebooted"]
    assert ready_hostnames(history) == ["contract-web", "contract-web", "contract-renamed"]
    assert history.truncated is False and history.lines[0] != HISTORY_DROPPED
    assert after_last_separator(history).startswith(current.text)
    assert separators(current) == [] and ready_hostnames(current) == ["contract-renamed"]


def screen(endpoint: VncEndpoint, password: str) -> ServerInit:
    """The RFB handshake with the guest's VNC server, with VNC authentication, up to ServerInit."""
    with socket.create_connection((endpoint.host, endpoint.port), timeout=30) as sock:
        return handshake(over_socket(sock), password)


def soon() -> datetime:
    """A VNC password's expiry a few minutes away."""
    return datetime.now(UTC) + timedelta(minutes=5)


def read_until(session: SerialConsole, wanted: bytes, seconds: float = 30.0) -> bytes:
    """What the serial console printed until `wanted` appeared."""
    seen, deadline = b"", time.monotonic() + seconds
    while wanted not in seen:
        assert time.monotonic() < deadline, f"no {wanted!r} on the serial console; it printed {seen!r}"
        seen += session.read(0.5)
    return seen


def read_until_closed(session: SerialConsole, seconds: float = 30.0) -> None:
    """Read until the session says it has ended (ConsoleClosed), within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        session.read(0.5)
    pytest.fail(f"the serial console session was still open after {seconds}s")


def test_vnc_asks_for_the_password_it_was_given(driver: HypervisorDriver, guest: str) -> None:
    assert driver.capabilities.vnc_console  # both drivers' endpoints are on this machine
    until = soon()
    endpoint = driver.vnc_console(guest, "Vnc-pw-1", until)
    assert driver.vnc_console(guest, "Vnc-pw-1", until) == endpoint  # the same again changes nothing
    shown = screen(endpoint, "Vnc-pw-1")
    assert shown.version == b"RFB 003.008\n" and shown.security_types == [2]  # VNC authentication only
    assert shown.width >= 320 and shown.height >= 200 and shown.bits_per_pixel in (8, 16, 32)
    with pytest.raises(RfbRefused):
        screen(endpoint, "wrong-pw")


def test_a_new_vnc_password_replaces_the_old_and_an_expired_one_is_refused(driver: HypervisorDriver,
                                                                           guest: str) -> None:
    endpoint = driver.vnc_console(guest, "first-pw", soon())
    assert driver.vnc_console(guest, "second12", soon()) == endpoint
    with pytest.raises(RfbRefused):
        screen(endpoint, "first-pw")
    assert screen(endpoint, "second12").width > 0
    driver.vnc_console(guest, "late-pw1", datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(RfbRefused):
        screen(endpoint, "late-pw1")
    for unusable in ("", "nine-char"):
        with pytest.raises(GuestFailed):
            driver.vnc_console(guest, unusable, soon())


def test_the_serial_console_is_interactive_one_session_at_a_time(driver: HypervisorDriver, guest: str) -> None:
    hostname = driver.wait_ready(guest, BOOT).hostname  # the name the running system booted with
    first = driver.open_serial(guest)
    try:
        first.write(b"\r")
        assert f"{hostname} login: ".encode() in read_until(first, b"login: ")
        second = driver.open_serial(guest)  # takes the console over
        try:
            with pytest.raises(ConsoleClosed):
                read_until_closed(first)
            with pytest.raises(ConsoleClosed):
                first.write(b"\r")
            second.write(b"\r")
            assert f"{hostname} login: ".encode() in read_until(second, b"login: ")
        finally:
            second.close()
    finally:
        first.close()
        first.close()  # closing twice is fine
    assert "CLOUDLET_READY" in driver.console_output(guest).text  # the log is kept beside the sessions


def test_poweroff_cuts_the_power_and_a_stopped_guest_is_not_ready(driver: HypervisorDriver, guest: str) -> None:
    driver.poweroff(guest)
    driver.poweroff(guest)
    assert driver.state(guest) == GuestState.STOPPED
    with pytest.raises(GuestFailed):
        driver.wait_ready(guest, 1)
    driver.create_guest(SPEC)  # the same spec again starts it
    assert driver.wait_ready(guest, BOOT).address == "198.51.100.23"


def test_a_console_session_ends_when_its_guest_stops_and_a_stopped_guest_has_none(driver: HypervisorDriver,
                                                                                   guest: str) -> None:
    session = driver.open_serial(guest)
    try:
        driver.poweroff(guest)  # left stopped: the next test destroys it
        with pytest.raises(ConsoleClosed):
            read_until_closed(session)
        with pytest.raises(GuestFailed):
            driver.vnc_console(guest, "stopped1", soon())
        with pytest.raises(GuestFailed):
            driver.open_serial(guest)
    finally:
        session.close()


def test_a_console_history_keeps_its_last_mebibyte_whole_lines_first_dropped(driver: HypervisorDriver,
                                                                             guest: str) -> None:
    assert driver.state(guest) == GuestState.STOPPED
    last = driver.console_output(guest).text
    assert "CLOUDLET_READY" in last and driver.console_history(guest).text.endswith(last)  # kept once stopped
    print_on_console(driver, guest, "".join(f"chatter line {n:07d}\n" for n in range(80_000)))  # 1.6 MiB
    history = driver.console_history(guest)
    assert history.truncated is True and history.lines[0] == HISTORY_DROPPED
    assert len(history.text.encode()) <= CONSOLE_HISTORY_BYTES
    assert history.lines[1].startswith("chatter line ") and len(history.lines[1]) == len("chatter line 0000000")
    assert history.text.endswith("chatter line 0079999\n")
    assert "CLOUDLET_READY" not in history.text  # every boot before the chatter was older: dropped first
    driver.start(guest)
    driver.wait_ready(guest, BOOT)
    history = driver.console_history(guest)
    assert history.truncated is True and len(history.text.encode()) <= CONSOLE_HISTORY_BYTES
    assert separators(history) == ["started"] and "chatter line 0079999\n" in history.text
    assert ready_hostnames(history) == ["contract-web"]


def test_clearing_the_console_forgets_every_boot(driver: HypervisorDriver, guest: str) -> None:
    driver.poweroff(guest)
    driver.clear_console(guest)
    assert driver.console_history(guest) == ConsoleOutput(text="", truncated=False, lines=[])
    assert driver.console_output(guest).lines == []
    driver.clear_console(guest)  # idempotent
    driver.start(guest)  # the next boot has nothing before it: no separator
    driver.wait_ready(guest, BOOT)
    current = driver.console_output(guest)
    history = driver.console_history(guest)
    assert history.text.startswith(current.text) and separators(history) == []
    assert ready_hostnames(history) == ["contract-web"]
    driver.clear_console(guest)  # while it runs: what it printed goes, the guest stays
    assert driver.state(guest) == GuestState.RUNNING
    assert ready_hostnames(driver.console_history(guest)) == [] and ready_hostnames(driver.console_output(guest)) == []


def test_destroy_removes_the_guest_and_everything_it_had(driver: HypervisorDriver, guest: str) -> None:
    if not isinstance(driver, FakeDriver):  # as after a host restart: the guest's route is gone already
        assert SPEC.network is not None
        subprocess.run(["ip", "route", "del", f"{SPEC.network.address.split('/')[0]}/32", "dev", "cloudlet0"],
                       check=True, timeout=10)
    driver.destroy_guest(guest)
    assert guest not in [info.name for info in driver.list_guests()]
    assert leftovers(driver, guest) == []
    if not isinstance(driver, FakeDriver):
        assert SPEC.network is not None and SPEC.network.address.split("/")[0] not in guest_routes()
    with pytest.raises(GuestNotFound):
        driver.state(guest)
    driver.destroy_guest(guest)  # already gone: fine


def test_power_actions_on_a_missing_guest_say_so(driver: HypervisorDriver) -> None:
    for action in (driver.state, driver.start, driver.poweroff, driver.reboot, driver.stats, driver.console_output,
                   driver.console_history, driver.clear_console):
        with pytest.raises(GuestNotFound):
            action("contract-nobody")


def test_consoles_of_a_missing_guest_say_so(driver: HypervisorDriver) -> None:
    with pytest.raises(GuestNotFound):
        driver.vnc_console("contract-nobody", "password", soon())
    with pytest.raises(GuestNotFound):
        driver.open_serial("contract-nobody")


def test_an_unknown_image_builds_nothing(driver: HypervisorDriver) -> None:
    with pytest.raises(ImageNotFound):
        driver.create_guest(GuestSpec(**{**SPEC.__dict__, "name": "contract-orphan", "image": "no-such-image"}))
    assert "contract-orphan" not in [info.name for info in driver.list_guests()]
    assert leftovers(driver, "contract-orphan") == []


def test_a_disk_smaller_than_its_image_is_refused_and_cleaned_up(driver: HypervisorDriver, small_image: Path) -> None:
    driver.import_image("contract-big", small_image)
    with pytest.raises(GuestFailed):
        driver.create_guest(GuestSpec(**{**SPEC.__dict__, "name": "contract-small", "image": "contract-big",
                                         "disk_gib": 1}))
    assert "contract-small" not in [info.name for info in driver.list_guests()]
    assert leftovers(driver, "contract-small") == []


def test_images_import_idempotently_and_refuse_what_is_not_qcow2(driver: HypervisorDriver, tiny_image: Path,
                                                                  not_an_image: Path) -> None:
    again = driver.import_image(IMAGE, tiny_image)
    assert again.virtual_size_bytes == 64 * 1024**2
    assert [image.name for image in driver.list_images()].count(IMAGE) == 1
    with pytest.raises(GuestFailed):
        driver.import_image("contract-junk", not_an_image)
    assert "contract-junk" not in [image.name for image in driver.list_images()]


@pytest.fixture(scope="module")
def staged(driver: HypervisorDriver) -> str:
    """The module's second guest, only defined: no seed, never started."""
    driver.destroy_guest(STAGED.name)
    driver.define_guest(STAGED)
    return STAGED.name


def test_a_defined_guest_is_stopped_with_its_hardware(driver: HypervisorDriver, staged: str) -> None:
    assert driver.hardware(staged) == GuestInfo(staged, GuestState.STOPPED, 1, 320)
    assert driver.state(staged) == GuestState.STOPPED
    assert GuestInfo(staged, GuestState.STOPPED, 1, 320) in driver.list_guests()
    assert driver.console_output(staged).lines == []
    assert driver.console_history(staged) == ConsoleOutput(text="", truncated=False, lines=[])
    assert driver.stats(staged).disk_capacity_bytes == 3 * 1024**3
    with pytest.raises(GuestFailed):
        driver.wait_ready(staged, 1)


def test_defining_again_is_idempotent_and_refuses_another_spec(driver: HypervisorDriver, staged: str) -> None:
    driver.define_guest(STAGED)
    for different in (replace(STAGED, vcpus=2), replace(STAGED, disk_gib=4), replace(STAGED, hostname="other")):
        with pytest.raises(GuestFailed):
            driver.define_guest(different)
    assert [info.name for info in driver.list_guests()].count(staged) == 1
    assert driver.hardware(staged) == GuestInfo(staged, GuestState.STOPPED, 1, 320)


def test_a_guest_without_a_seed_does_not_start(driver: HypervisorDriver, staged: str) -> None:
    for power_on in (driver.start, driver.reboot):
        with pytest.raises(GuestFailed, match="no seed written"):
            power_on(staged)
    assert driver.state(staged) == GuestState.STOPPED


def test_a_seed_cannot_change_what_was_defined(driver: HypervisorDriver, staged: str) -> None:
    for different in (replace(STAGED, memory_mib=256), replace(STAGED, image="no-such-image")):
        with pytest.raises(GuestFailed):
            driver.write_seed(different)
    with pytest.raises(GuestFailed, match="no seed written"):
        driver.start(staged)


def test_define_write_seed_and_start_build_the_guest_of_the_spec(driver: HypervisorDriver, staged: str) -> None:
    driver.write_seed(STAGED)
    driver.write_seed(STAGED)  # idempotent
    assert driver.state(staged) == GuestState.STOPPED  # writing a seed starts nothing
    driver.start(staged)
    ready = driver.wait_ready(staged, BOOT)
    assert ready == ("i-contract-2", "contract-staged", "198.51.100.24", 2, False)
    assert driver.hardware(staged) == GuestInfo(staged, GuestState.RUNNING, 1, 320)


def test_a_seed_written_while_stopped_is_applied_at_the_next_start(driver: HypervisorDriver, staged: str) -> None:
    driver.poweroff(staged)
    driver.write_seed(replace(STAGED, hostname="contract-reinstalled", root_password="n3w"))
    assert driver.state(staged) == GuestState.STOPPED
    driver.start(staged)
    ready = driver.wait_ready(staged, BOOT)
    assert (ready.hostname, ready.root_password_set, ready.address) == ("contract-reinstalled", True, "198.51.100.24")


def test_destroying_the_staged_guest_leaves_nothing(driver: HypervisorDriver, staged: str) -> None:
    driver.destroy_guest(staged)
    assert staged not in [info.name for info in driver.list_guests()]
    assert leftovers(driver, staged) == []


def test_destroying_a_guest_that_was_only_defined_removes_everything(driver: HypervisorDriver) -> None:
    bare = replace(STAGED, name="contract-bare", vcpus=2, memory_mib=384)
    driver.define_guest(bare)
    assert driver.hardware(bare.name) == GuestInfo(bare.name, GuestState.STOPPED, 2, 384)
    driver.destroy_guest(bare.name)
    assert bare.name not in [info.name for info in driver.list_guests()]
    assert leftovers(driver, bare.name) == []
    with pytest.raises(GuestNotFound):
        driver.hardware(bare.name)


def test_defining_with_an_unknown_image_leaves_nothing(driver: HypervisorDriver) -> None:
    with pytest.raises(ImageNotFound):
        driver.define_guest(replace(STAGED, name="contract-orphan", image="no-such-image"))
    assert "contract-orphan" not in [info.name for info in driver.list_guests()]
    assert leftovers(driver, "contract-orphan") == []


def test_seed_and_hardware_of_a_missing_guest_say_so(driver: HypervisorDriver) -> None:
    with pytest.raises(GuestNotFound):
        driver.write_seed(replace(STAGED, name="contract-nobody"))
    with pytest.raises(GuestNotFound):
        driver.hardware("contract-nobody")
    assert leftovers(driver, "contract-nobody") == []


# --- resize: a third guest, grown while it runs ---------------------------------------------------

SMALL = GuestSpec(name="contract-resize", image=IMAGE, vcpus=1, memory_mib=256, disk_gib=2, hostname="contract-resize",
                  root_password="s1ze-me", instance_id="i-contract-3",
                  network=GuestNetwork(address="198.51.100.25/24", gateway="198.51.100.1"))
BIGGER = replace(SMALL, vcpus=2, memory_mib=384, disk_gib=3)


@pytest.fixture(scope="module")
def resized(driver: HypervisorDriver) -> str:
    """The module's third guest, built small and running."""
    driver.destroy_guest(SMALL.name)
    driver.create_guest(SMALL)
    driver.wait_ready(SMALL.name, BOOT)
    return SMALL.name


def test_a_resize_refuses_a_smaller_disk_or_another_image_and_changes_nothing(driver: HypervisorDriver,
                                                                               resized: str) -> None:
    for wrong in (replace(SMALL, disk_gib=1, vcpus=2), replace(BIGGER, image="no-such-image")):
        with pytest.raises(GuestFailed):
            driver.resize_guest(wrong)
    assert driver.hardware(resized) == GuestInfo(resized, GuestState.RUNNING, 1, 256)
    assert driver.stats(resized).disk_capacity_bytes == 2 * 1024**3
    with pytest.raises(GuestNotFound):
        driver.resize_guest(replace(BIGGER, name="contract-nobody"))


def test_a_running_guest_gets_its_bigger_disk_at_once_and_keeps_its_hardware(driver: HypervisorDriver,
                                                                              resized: str) -> None:
    before = driver.console_output(resized).text
    driver.resize_guest(BIGGER)
    driver.resize_guest(BIGGER)  # idempotent
    assert driver.state(resized) == GuestState.RUNNING
    assert driver.console_output(resized).text.startswith(before)  # not restarted
    assert driver.stats(resized).disk_capacity_bytes == 3 * 1024**3
    assert driver.hardware(resized) == GuestInfo(resized, GuestState.RUNNING, 1, 256)  # until the next boot
    driver.write_seed(replace(BIGGER, root_password="n3w-size"))  # the guest's definition is the bigger spec now
    with pytest.raises(GuestFailed):
        driver.write_seed(SMALL)


def test_the_next_reboot_brings_the_new_vcpus_and_memory(driver: HypervisorDriver, resized: str) -> None:
    driver.reboot(resized)
    ready = driver.wait_ready(resized, BOOT)
    assert (ready.instance_id, ready.root_password_set) == ("i-contract-3", True)
    assert driver.hardware(resized) == GuestInfo(resized, GuestState.RUNNING, 2, 384)
    assert (driver.stats(resized).vcpus, driver.stats(resized).memory_mib) == (2, 384)
    driver.destroy_guest(resized)
    assert leftovers(driver, resized) == []


# --- snapshots and disk copies ---------------------------------------------------------------------------

COPIED = GuestSpec(name="contract-copies", image=IMAGE, vcpus=1, memory_mib=256, disk_gib=2,
                   hostname="contract-copies", root_password="c0py-me", instance_id="i-contract-4",
                   network=GuestNetwork(address="198.51.100.26/24", gateway="198.51.100.1"))


@pytest.fixture(scope="module")
def copied(driver: HypervisorDriver) -> str:
    """The module's fourth guest, defined with its seed and stopped."""
    driver.destroy_guest(COPIED.name)
    driver.define_guest(COPIED)
    driver.write_seed(COPIED)
    return COPIED.name


def test_a_stopped_guest_snapshots_idempotently_and_reverts_stopped(driver: HypervisorDriver, copied: str) -> None:
    with pytest.raises(GuestFailed):
        driver.create_snapshot(copied, "not-allowed", include_ram=False)
    driver.create_snapshot(copied, "first", include_ram=True)  # no memory to keep: the disk alone
    driver.create_snapshot(copied, "first", include_ram=True)
    driver.create_snapshot(copied, "second_one", include_ram=False)
    assert driver.list_snapshots(copied) == ["first", "second_one"]
    driver.revert_snapshot(copied, "first")
    assert driver.state(copied) == GuestState.STOPPED
    with pytest.raises(GuestFailed):
        driver.revert_snapshot(copied, "missing")
    driver.delete_snapshot(copied, "second_one")
    driver.delete_snapshot(copied, "second_one")  # idempotent
    assert driver.list_snapshots(copied) == ["first"]


def test_a_disk_copy_is_a_compressed_qcow2_that_imports_back(driver: HypervisorDriver, copied: str,
                                                             tmp_path: Path) -> None:
    copy = tmp_path / "copy.qcow2"
    driver.export_disk(copied, copy)
    assert copy.read_bytes()[:4] == b"QFI\xfb"
    assert not list(tmp_path.glob("*.partial"))
    driver.import_disk(copied, copy)
    driver.import_disk(copied, copy)  # idempotent
    assert driver.list_snapshots(copied) == ["first"]  # snapshots are kept
    too_big = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(too_big), "3G"], check=True)
    with pytest.raises(GuestFailed):
        driver.import_disk(copied, too_big)
    with pytest.raises(GuestFailed):
        driver.import_disk(copied, tmp_path / "missing.qcow2")


def test_a_running_guest_snapshots_with_or_without_its_memory(driver: HypervisorDriver, copied: str,
                                                              tmp_path: Path) -> None:
    driver.start(copied)
    driver.wait_ready(copied, BOOT)
    with pytest.raises(GuestFailed):
        driver.import_disk(copied, tmp_path / "nothing.qcow2")  # refused while it runs
    driver.create_snapshot(copied, "live", include_ram=True)
    driver.create_snapshot(copied, "disk_only", include_ram=False)
    copy = tmp_path / "running.qcow2"
    driver.export_disk(copied, copy)  # paused for the copy, then running again
    assert driver.state(copied) == GuestState.RUNNING
    assert copy.read_bytes()[:4] == b"QFI\xfb"
    driver.revert_snapshot(copied, "disk_only")
    assert driver.state(copied) == GuestState.STOPPED  # the disk alone: the caller boots it
    driver.revert_snapshot(copied, "live")
    assert driver.state(copied) == GuestState.RUNNING  # back where its memory was
    assert separators(driver.console_history(copied)) == ["restored from a snapshot"]  # a new run of the machine
    driver.destroy_guest(copied)
    assert leftovers(driver, copied) == []


def test_snapshots_and_copies_of_a_missing_guest_say_so(driver: HypervisorDriver, tmp_path: Path) -> None:
    for call in (lambda: driver.create_snapshot("contract-none", "x", include_ram=False),
                 lambda: driver.revert_snapshot("contract-none", "x"),
                 lambda: driver.delete_snapshot("contract-none", "x"),
                 lambda: driver.list_snapshots("contract-none"),
                 lambda: driver.export_disk("contract-none", tmp_path / "x.qcow2")):
        with pytest.raises(GuestNotFound):
            call()
