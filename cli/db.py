"""`carecheck db upgrade|check|current|downgrade`: the SQL schema's migrations (Alembic, `migrations/`)."""

from __future__ import annotations

import typer

from core.errors import ConfigError
from core.settings import get_settings

db_app = typer.Typer(no_args_is_help=True, help="Lược đồ CSDL / the SQL schema's migrations.")


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision (default: the newest).")) -> None:
    """Nâng cấp lược đồ / bring the database to the newest schema, keeping every row."""
    from aggregator import schema
    from aggregator.db import get_engine

    before, after = schema.upgrade(get_engine(get_settings()), revision)
    if before == after:
        typer.echo(f"Lược đồ đã ở phiên bản mới nhất / schema already at {after}")
    else:
        typer.echo(f"Đã nâng cấp lược đồ / schema upgraded: {before or 'empty'} -> {after}")


@db_app.command("downgrade")
def downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. 0002 or -1.")) -> None:
    """Hạ cấp lược đồ / go back to an earlier schema revision (columns added since are dropped)."""
    from aggregator import schema
    from aggregator.db import get_engine

    before, after = schema.downgrade(get_engine(get_settings()), revision)
    typer.echo(f"Đã hạ cấp lược đồ / schema downgraded: {before} -> {after or 'empty'}")


@db_app.command("current")
def current() -> None:
    """Phiên bản lược đồ hiện tại / the database's schema revision and the code's."""
    from aggregator import schema
    from aggregator.db import get_engine

    rev = schema.current(get_engine(get_settings()))
    typer.echo(f"database: {rev or 'none (empty, or made before migrations)'}; code: {schema.head()}")


@db_app.command("check")
def check(
    fresh: bool = typer.Option(
        False, "--fresh", help="CSDL tạm nâng cấp từ đầu / compare the models with the migrations only."
    ),
) -> None:
    """Kiểm tra lược đồ khớp mã / fail when the models and the database (or the migrations) disagree."""
    from aggregator import schema
    from aggregator.db import get_engine

    diffs = schema.check_fresh() if fresh else schema.differences(get_engine(get_settings()))
    if diffs:
        where = "the migrations" if fresh else "the database"
        raise ConfigError(
            "Lược đồ CSDL không khớp mã: " + "; ".join(diffs) + ". Chạy `carecheck db upgrade`, hoặc thêm "
            "một bản migration (alembic revision --autogenerate).",
            f"The models and {where} disagree: " + "; ".join(diffs) + ". Run `carecheck db upgrade`, or "
            "add a migration (alembic revision --autogenerate).",
        )
    typer.echo("Lược đồ khớp mã / schema matches the models")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
