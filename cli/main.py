"""`carecheck` — one CLI; each command group is a module of this package, mounted below.

Problems and usage mistakes are caught here, at the edge only (cli/errors.py): one bilingual line, exit code 1
for a problem and 2 for a usage mistake; a bare group command prints its help and exits 0.
"""

from __future__ import annotations

import typer

from cli import db, edge, forms, indicators, ingest, local, report, serve, simulate, tokens

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
    from cli.errors import run

    run(app)
