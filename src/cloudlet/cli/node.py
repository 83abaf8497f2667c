"""`cloudlet node`: make this machine a hypervisor node."""

from __future__ import annotations

import time

import typer

from cloudlet.config import Settings
from cloudlet.nodes import service as nodes
from cloudlet.nodes.prepare import prepare_node

app = typer.Typer(help="This machine as a hypervisor node.", no_args_is_help=True)


@app.command("prepare")
def prepare(
    install: bool = typer.Option(True, "--install/--no-install", help="Install missing Debian packages."),
    reprobe: bool = typer.Option(False, "--reprobe", help="Boot the KVM/TCG probe again even if it ran before."),
) -> None:
    """Install QEMU and libvirt, start libvirtd, create the pool and the isolated bridge, probe KVM."""
    started = time.monotonic()
    settings = Settings()
    done = prepare_node(settings.data_dir, install=install, reprobe=reprobe, say=lambda line: typer.echo(f"== {line}"))
    facts = done.facts
    if facts is None:  # prepare_node always probes or reads the probe's result
        raise typer.Exit(1)
    accel = "KVM" if facts.domain_type == "kvm" else "TCG (no working KVM here)"
    typer.echo(f"node ready in {time.monotonic() - started:.1f}s: pool at {done.pool_path}, network cloudlet0, "
               f"guests run under {accel}; probe boot took {facts.boot_seconds:.2f}s")
    recorded = nodes.facts_dir(settings.data_dir) / nodes.NODE_FILE
    typer.echo(f"node facts in {recorded}: `cloudlet serve` with this data directory registers this node")
    if done.pool_path is not None and done.pool_path.parent != settings.data_dir:
        typer.echo(f"note: the libvirt pool is another installation's ({done.pool_path}); this one shares it")
