"""`carecheck serve` (the OpenRosa sync server under uvicorn) and `carecheck user add|list|disable|enable`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from core.settings import get_settings

if TYPE_CHECKING:  # imported lazily: `carecheck --help` should not load the web stack
    from sync_server.auth import Accounts

user = typer.Typer(no_args_is_help=True, help="Accounts: collaborators, district and province officers.")


def _accounts() -> Accounts:
    from core.couch import Couch
    from sync_server.auth import Accounts

    s = get_settings()
    return Accounts(Couch.from_settings(s), s)


@user.command("add")
def user_add(
    name: str,
    password: Annotated[str, typer.Option("--password", "-p", help="At least 6 characters.")],
    role: Annotated[str, typer.Option(help="collaborator | district | province")] = "collaborator",
    area: Annotated[
        str | None,
        typer.Option(
            help="Legacy district (3 digits) or commune (5 digits) code; province accounts: 91 or nothing."
        ),
    ] = None,
) -> None:
    """Create an account (argon2 hash for Basic, HA1 for Digest)."""
    acc = _accounts().add(name, password, role, area)
    typer.echo(f"Đã tạo tài khoản / created: {acc.name} ({acc.role}, area {acc.area})")


@user.command("list")
def user_list() -> None:
    """List accounts (no secrets)."""
    from rich.console import Console
    from rich.table import Table

    from core.localtime import shown

    table = Table("name", "role", "area", "active", "created (UTC+7)")
    for a in _accounts().list():
        table.add_row(
            str(a["name"]),
            str(a["role"]),
            str(a["area"]),
            "yes" if a["active"] else "no",
            shown(a.get("created_at")),
        )
    Console().print(table)


@user.command("disable")
def user_disable(name: str) -> None:
    """Disable an account (takes effect on running servers within 30 seconds)."""
    _accounts().set_active(name, False)
    typer.echo(f"Đã khoá / disabled: {name}")


@user.command("enable")
def user_enable(name: str) -> None:
    """Re-enable a disabled account."""
    _accounts().set_active(name, True)
    typer.echo(f"Đã mở khoá / enabled: {name}")


@user.command("unlock")
def user_unlock(
    name: str,
    by: Annotated[str | None, typer.Option(help="Who unlocks (recorded in the audit log).")] = None,
) -> None:
    """Clear a lockout after too many wrong passwords (takes effect on running servers within 2 seconds)."""
    from core.couch import Couch
    from core.throttle import Throttle

    s = get_settings()
    was = Throttle(Couch.from_settings(s), s).unlock(name, by=by)
    typer.echo(
        f"Đã mở khoá đăng nhập / login unlocked: {name}"
        if was
        else f"{name} không bị khoá đăng nhập / was not locked (failures cleared)"
    )


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    proxy_headers: Annotated[
        bool, typer.Option(help="Trust X-Forwarded-Proto/For from --forwarded-allow-ips (a TLS proxy).")
    ] = False,
    forwarded_allow_ips: Annotated[
        str, typer.Option(help="The reverse proxy's address(es), comma-separated; only these are trusted.")
    ] = "127.0.0.1",
) -> None:
    """Run the OpenRosa sync server (phones use http://HOST:PORT as their server URL)."""
    import logging

    import uvicorn

    from console.app import create_app

    # carecheck's own lines (one per submission, refused writes, disconnects; ids only, no personal data)
    # beside uvicorn's; without this only warnings would reach the log.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s %(message)s")

    # date_header=False: our middleware sets Date on every response (also under TestClient); no duplicates.
    # No access log: each submission logs one line of its own (ids only), and the hot path stays lean.
    uvicorn.run(
        create_app(get_settings()),
        host=host,
        port=port,
        date_header=False,
        server_header=False,
        log_level="info",
        access_log=False,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(user, name="user")
    app.command("serve")(serve)
