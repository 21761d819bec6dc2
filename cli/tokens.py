"""`carecheck token list|revoke`: the field web app's device tokens (sync_server/tokens.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from core.errors import BadRequest
from core.settings import get_settings

if TYPE_CHECKING:
    from sync_server.auth import Accounts

token = typer.Typer(no_args_is_help=True, help="Device tokens of the field web app: list, revoke.")


def _accounts() -> Accounts:  # imports inside: `carecheck --help` does not load the web stack
    from core.couch import Couch
    from sync_server.auth import Accounts

    s = get_settings()
    return Accounts(Couch.from_settings(s), s)


@token.command("list")
def token_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this account's tokens.")] = None,
) -> None:
    """Every device token (never the token itself): id, account, phone, created, expires, revoked."""
    from sync_server import tokens

    rows = tokens.list_tokens(_accounts(), user)
    if not rows:
        typer.echo("Không có mã thiết bị nào. / No device tokens.")
    for r in rows:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else f"active until {r['expires_at']}"
        typer.echo(
            f"{r['token_id']}  {r['name']}  created {r['created_at']}  {state}  {str(r['label'])[:50]}"
        )


@token.command("revoke")
def token_revoke(
    token_id: Annotated[str | None, typer.Argument(help="The token id shown by `token list`.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Revoke every token of this account.")] = None,
) -> None:
    """Revoke one phone's token, or all of an account's (a lost phone). Takes effect within 30 s."""
    from sync_server import tokens

    if not token_id and not user:
        raise BadRequest("Cần mã thiết bị hoặc --user.", "Give a token id or --user.")
    n = tokens.revoke(_accounts(), token_id=token_id, name=None if token_id else user)
    typer.echo(f"Đã thu hồi {n} mã thiết bị. / Revoked {n} device token(s).")


def register(app: typer.Typer) -> None:
    app.add_typer(token, name="token")
