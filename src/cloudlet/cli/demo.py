"""`cloudlet demo`: order a server through the API like a customer, watch it build, read its console.

It is an HTTP client of a running server (`bash scripts/serve.sh`): it needs an API token with
instances:read and instances:write and a wallet that can pay for the plan (see the README's tour).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

POLL_SECONDS = 2.0  # 30 reads a minute: a build fits in a token's default budget of 60 with room to spare
MOST_RETRY_SECONDS = 60.0  # the longest Retry-After this client waits out; the limits' longest window is an hour


def send(client: httpx.Client, method: str, path: str, **options: Any) -> httpx.Response:
    """One request; a 429 is waited out once, for the Retry-After seconds the server asked for."""
    answer = client.request(method, path, **options)
    if answer.status_code != 429:
        return answer
    try:
        wait = float(answer.headers.get("Retry-After", ""))
    except ValueError:
        return answer
    if not 0 <= wait <= MOST_RETRY_SECONDS:
        return answer
    time.sleep(wait)
    return client.request(method, path, **options)


def _fail(answer: httpx.Response, doing: str) -> None:
    if answer.is_success:
        return
    typer.echo(f"{doing} failed: HTTP {answer.status_code} {answer.text}", err=True)
    raise typer.Exit(1)


def _find_plan(client: httpx.Client, code: str) -> dict[str, Any]:
    answer = send(client, "GET", "/api/catalog/plans")
    _fail(answer, "reading the catalogue")
    for category in answer.json()["categories"]:
        for package in category["packages"]:
            if package["plan"] == code:
                return dict(package)
    typer.echo(f"there is no plan {code!r} in the catalogue", err=True)
    raise typer.Exit(1)


def _find_template(client: httpx.Client, package_id: int, code: str) -> int:
    answer = send(client, "GET", f"/api/catalog/os-templates/{package_id}")
    _fail(answer, "reading the OS templates")
    for group in answer.json():
        for template in group["templates"]:
            if template["code"] == code:
                return int(template["id"])
    typer.echo(f"there is no OS template {code!r} for this plan", err=True)
    raise typer.Exit(1)


def _watch(client: httpx.Client, console: Console, instance_id: str, timeout: float) -> dict[str, Any]:
    """Show the create action's tasks as they complete; the finished action."""
    deadline = time.monotonic() + timeout
    columns = (TextColumn("{task.description:<24}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("validate_resources", total=100)
        while True:
            answer = send(client, "GET", f"/api/instances/{instance_id}/actions")
            _fail(answer, "reading the build's progress")
            action = answer.json()[-1]  # the first action of an instance is its creation
            progress.update(bar, completed=action["progress"], description=action["current_task"] or "done")
            if action["status"] != "running":
                return dict(action)
            if time.monotonic() > deadline:
                typer.echo(f"the build did not finish within {timeout:.0f}s", err=True)
                raise typer.Exit(1)
            time.sleep(POLL_SECONDS)


def _key_pair(directory: Path) -> tuple[Path, str]:
    """A throw-away Ed25519 key: the private key's file (for ssh -i) and the public key's line."""
    private = Ed25519PrivateKey.generate()
    path = directory / "demo_ed25519"
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
    path.chmod(0o600)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return path, public.decode() + " cloudlet-demo"


def _ssh_login(console: Console, key: Path, address: str) -> None:
    """Log in to the server over SSH as root with the demo's key and show what it says about itself."""
    if shutil.which("ssh") is None:
        console.print("[yellow]no OpenSSH client here (apt install openssh-client) to log in with[/]")
        return
    command = ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
               f"root@{address}", "hostname -f; uname -sr; uptime; df -h / | tail -n 1"]
    console.rule(f"ssh root@{address}")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    except subprocess.TimeoutExpired:
        console.print("[red]the SSH login did not finish within 60 s[/]")
        raise typer.Exit(1) from None
    console.print(done.stdout.rstrip() or done.stderr.rstrip(), markup=False, highlight=False)
    console.rule()
    if done.returncode != 0:
        raise typer.Exit(1)


def _build_and_show(client: httpx.Client, console: Console, order: dict[str, Any], key_file: Path, *,
                    timeout: float, keep: bool) -> None:
    """Order the server, watch its build, show it (an SSH login, or its serial console), and delete it."""
    created = send(client, "POST", "/api/instances", json=order)
    _fail(created, "ordering the server")
    server = created.json()
    console.print(f"[bold]{server['hostname']}[/] ({server['id']}): {server['plan']}, {server['vcpu']} vCPU, "
                  f"{server['ram']} GiB, {server['storage']} GiB, address {server['main_ip']}, "
                  f"charged {server['charged_cents'] / 100:.2f}")
    action = _watch(client, console, server["id"], timeout)
    if action["status"] != "success":
        console.print(f"[red]the build failed[/]: {action['error']}")
        raise typer.Exit(1)
    for task in action["tasks"]:
        console.print(f"  {task['order']:>2}. {task['name']:<22} {task['detail']}")
    console.print(f"[green]running[/] (root password: {server['root_password']})")
    verified = next(task["detail"] for task in action["tasks"] if task["name"] == "verify_connectivity")
    if "SSH answers" in verified:  # the image has an SSH server, and the node reached it
        _ssh_login(console, key_file, server["main_ip"])
    else:
        logs = send(client, "GET", f"/v1/instances/{server['id']}/install-logs")
        _fail(logs, "reading the serial console")
        console.rule("serial console")
        for line in logs.json()["logs"]:
            console.print(line, markup=False, highlight=False)
        console.rule()
    if keep:
        return
    deleted = send(client, "DELETE", f"/api/instances/{server['id']}", json={"mode": "immediate"})
    _fail(deleted, "deleting the server")
    console.print(f"deleted; refunded {deleted.json()['refund_cents'] / 100:.2f}")


def demo(
    url: str = typer.Option("http://127.0.0.1:8080", envvar="CLOUDLET_API", help="The server's base URL."),
    token: str = typer.Option(..., envvar="CLOUDLET_TOKEN", help="An API token with instances:read and write."),
    plan: str = typer.Option("scout-1", help="Plan code."),
    template: str = typer.Option("debian-12-tiny", "--template", "--image",
                                 help="OS template code (debian-12 once `cloudlet images build debian-12` ran)."),
    hostname: str = typer.Option("demo-1.example.com", help="The server's hostname."),
    keep: bool = typer.Option(False, "--keep", help="Leave the server running (default: delete it at the end)."),
    timeout: float = typer.Option(600.0, help="Seconds to wait for the build."),
) -> None:
    """Create a server, show its build task by task, print its serial console (or, where the image has an SSH
    server, log in to it over SSH with a throw-away key), then delete it."""
    console = Console()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client, \
            tempfile.TemporaryDirectory(prefix="cloudlet-demo-") as tmp:
        key_file, public_key = _key_pair(Path(tmp))
        me = send(client, "GET", "/api/me")
        _fail(me, "reading your account")
        project_id = me.json()["projects"][0]["id"]
        package = _find_plan(client, plan)
        order = {"name": hostname.split(".")[0], "hostname": hostname, "project_id": project_id,
                 "package_id": package["id"], "category": package["category"],
                 "os_template_id": _find_template(client, package["id"], template), "os_name": template,
                 "billing_cycle": "monthly", "ssh_key_ids": []}
        saved = send(client, "POST", "/api/ssh-keys", json={"name": f"demo {hostname}", "public_key": public_key},
                     params={"project_id": project_id})
        _fail(saved, "saving the demo's SSH key")
        order["ssh_key_ids"] = [saved.json()["id"]]
        try:
            _build_and_show(client, console, order, key_file, timeout=timeout, keep=keep)
        finally:  # the servers built with it keep it
            send(client, "DELETE", f"/api/ssh-keys/{saved.json()['id']}")
