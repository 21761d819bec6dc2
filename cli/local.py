"""`carecheck local …`: the embedded store (pouchdb-server under var/), and `carecheck demo`."""

from __future__ import annotations

from datetime import date

import typer

from core.settings import get_settings

local = typer.Typer(no_args_is_help=True, help="The embedded local stack (pouchdb-server under ./var).")


@local.command("start")
def start() -> None:
    """Start the embedded CouchDB-compatible store (pouchdb-server) if no CARECHECK_COUCHDB_URL is set."""
    from core.services import ensure_embedded_couch

    s = get_settings()
    if not s.embedded_couch:
        typer.echo(f"Using CouchDB at {s.couchdb_url} (CARECHECK_COUCHDB_URL); nothing to start.")
        return
    typer.echo(f"Embedded store running at {ensure_embedded_couch(s)} (data in {s.var_dir / 'couch'}).")


@local.command("stop")
def stop() -> None:
    """Stop the embedded store."""
    from core.services import stop_embedded_couch

    typer.echo("Stopped." if stop_embedded_couch(get_settings()) else "Not running.")


def register(app: typer.Typer) -> None:
    app.add_typer(local, name="local")

    @app.command("demo")
    def demo(
        households: int = typer.Option(
            600, "--households", min=1, help="Households visited in the simulation."
        ),
        seed: int = typer.Option(
            2026, "--seed", help="Same seed and day, same records: a rerun that day is a resend."
        ),
        period: str = typer.Option("", "--period", help="Quarter to simulate and report (default: current)."),
        today: str = typer.Option(
            "", "--today", help="Take this date as today (YYYY-MM-DD): the field work is the day before it."
        ),
    ) -> None:
        """The main job end to end on embedded defaults: forms, store, server, field work, worker, report."""
        from cli.demo import run_demo

        try:
            as_of = date.fromisoformat(today) if today else None
        except ValueError:
            raise typer.BadParameter(
                f"'{today}' không phải ngày YYYY-MM-DD / is not a date YYYY-MM-DD", param_hint="--today"
            ) from None
        run_demo(get_settings(), households=households, seed=seed, period=period or None, today=as_of)
