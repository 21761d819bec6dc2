"""`carecheck` — one CLI with sub-commands from forms, sync_server and aggregator.

Problems are caught here, at the edge only: the operator sees one line and exit code 1.
"""

from __future__ import annotations

import importlib
import sys

import click
import typer

from core.errors import Problem

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="carecheck: household child-care checks — forms, sync, indicators.",
)

# Each package exposes a Typer app (or a registration function) in its own cli module; a package that is not
# there yet simply contributes nothing.
_MOUNTS = [
    ("forms.cli", "forms", "Build and inspect the XLSForms."),
]
_REGISTER = [
    "sync_server.cli",  # serve, user
    "sync_server.simulator.cli",  # simulate
    "sync_server.edge.cli",  # edge init/status, conflicts
    "aggregator.cli",  # worker, beat, ingest, status, registry
    "aggregator.indicators_cli",  # indicators rebuild, report
    "aggregator.report_cli",  # report (HTML / XLSX / CSV for officers)
    "cli.local",  # local start/stop, demo
    "cli.tokens",  # token list/revoke (the field web app's device tokens)
]

for module, name, help_text in _MOUNTS:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise
        continue
    app.add_typer(mod.app, name=name, help=help_text)

for module in _REGISTER:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise
        continue
    mod.register(app)


def main() -> None:
    try:
        rv = app(standalone_mode=False)
    except Problem as exc:
        typer.echo(f"carecheck: {exc.text()}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
