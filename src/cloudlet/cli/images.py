"""`cloudlet images`: build and import guest images into this node's pool."""

from __future__ import annotations

import typer

app = typer.Typer(help="Guest images on this node.", no_args_is_help=True)
