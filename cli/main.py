"""`carecheck` — one CLI; each command group is a module of this package, mounted below.

Problems are caught here, at the edge only: the operator sees one line and exit code 1.
"""

from __future__ import annotations

import sys

import click
import typer

from cli import db, edge, forms, indicators, ingest, local, report, serve, simulate, tokens
from core.errors import Problem

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="carecheck: household child-care checks — forms, sync, indicators.",
)

# Every command group, listed explicitly: a module that is missing is an ImportError at start, never a gap.
app.add_typer(forms.app, name="forms", help="Build and inspect the XLSForms.")
for group in (serve, simulate, edge, ingest, indicators, report, db, local, tokens):
    group.register(app)


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
