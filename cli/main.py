"""`carecheck` — one CLI with sub-commands from forms, sync_server and aggregator.

Problems and usage mistakes are caught here, at the edge only (cli/errors.py): one bilingual line, exit code 1
for a problem and 2 for a usage mistake; a bare group command prints its help and exits 0.
"""

from __future__ import annotations

import importlib

import typer

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
    from cli.errors import run

    run(app)
