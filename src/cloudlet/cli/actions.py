"""`cloudlet actions ...`: operator commands on actions (list them, end a stale one)."""

from __future__ import annotations

import json

import typer

from cloudlet.app import build_runtime
from cloudlet.config import Settings
from cloudlet.instances import workflows
from cloudlet.kit.errors import CloudletError

app = typer.Typer(help="Actions: the changes the worker carries out on instances.", no_args_is_help=True)


@app.command("list")
def list_actions(
    running: bool = typer.Option(False, "--running", help="Only actions not finished yet."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """List actions newest first, with the instance each one holds (or the node a firewall push works on)."""
    runtime = build_runtime(Settings())
    try:
        with runtime.db.session(write=False) as session:
            found = workflows.list_actions(session, running_only=running, limit=limit)
    finally:
        runtime.db.dispose()
    for action in found:
        if as_json:
            typer.echo(json.dumps(action.model_dump(mode="json")))
        else:
            typer.echo(f"{action.id}\t{action.status}\t{action.command}\t"
                       f"{action.instance_uuid or f'node {action.node_id}'}\t"
                       f"{action.current_task or '-'}\t{action.progress}%\tsince {action.started_at:%Y-%m-%d %H:%M:%S}")


@app.command("fail")
def fail(
    action_id: int = typer.Argument(..., min=1, max=2**31 - 1, help="The action to end."),
    reason: str = typer.Option("", "--reason", help="Why; recorded in the action's error."),
) -> None:
    """End an unfinished action: cancel its workflow, run its clean-up, record the failure, free the instance."""
    settings = Settings()
    runtime = build_runtime(settings)
    try:
        ended = workflows.end_stale(runtime.db, settings, runtime.drivers, action_id, reason)
    except CloudletError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        runtime.db.dispose()
    typer.echo(f"action {ended.id} ({ended.command} on {ended.instance_uuid}) ended: {ended.error}")
