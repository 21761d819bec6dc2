"""How `carecheck` ends: one bilingual line and exit code 2 for a usage mistake, 1 for a problem; help and 0
for a bare group command — whatever typer/click release is installed.

Typer releases before 0.2x use the ``click`` package; later ones bundle a copy of click as ``typer._click``,
whose exception classes are not click's. Both are caught here, and recognised by class name (the names are
the same in both copies), never by identity.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

from pydantic import ValidationError

from core.errors import Problem

# click's message for each usage mistake, in Vietnamese first (the English message follows it).
_VI = {
    "NoSuchOption": "không có tuỳ chọn này",
    "BadOptionUsage": "tuỳ chọn dùng sai",
    "MissingParameter": "thiếu tham số",
    "BadParameter": "giá trị không hợp lệ",
    "BadArgumentUsage": "đối số dùng sai",
}


def _exception_classes() -> tuple[type[BaseException], ...]:
    """click's base exception classes from every copy of click that typer may be using."""
    found: list[type[BaseException]] = []
    modules = ["click.exceptions", "typer._click.exceptions"]
    for name in modules:
        try:
            mod = __import__(name, fromlist=["ClickException"])
        except ImportError:
            continue
        for cls_name in ("ClickException", "Exit", "Abort"):
            cls = getattr(mod, cls_name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found.append(cls)
    return tuple(found)


def _names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def one_line(text: str) -> str:
    return " ".join(text.split())


def usage_line(exc: Any) -> str:
    """``carecheck <command>: <vi> / <en> (carecheck <command> --help)`` for a click UsageError."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "carecheck"
    message = one_line(exc.format_message())
    names = _names(exc)
    if message.startswith("No such command"):
        vi = "không có lệnh này"
    else:
        vi = next((v for k, v in _VI.items() if k in names), "dùng sai lệnh")
    return f"{path}: {vi} / {message} (xem / see: {path} --help)"


def settings_line(exc: ValidationError) -> str:
    """``cấu hình sai / bad setting: CARECHECK_X: why; …`` (values are never echoed: they may be secrets)."""
    parts = []
    for err in exc.errors(include_input=False):
        loc = err.get("loc") or ()
        name = f"CARECHECK_{str(loc[0]).upper()}" if loc else "CARECHECK_*"
        parts.append(f"{name}: {one_line(str(err.get('msg', '')))}")
    return f"cấu hình sai / bad setting: {'; '.join(parts)}"


def run(app: Callable[..., Any]) -> NoReturn:
    """Call the Typer app without click's standalone handling and end the process as described above."""
    caught = _exception_classes()
    try:
        rv = app(standalone_mode=False, prog_name="carecheck")
    except Problem as exc:
        print(f"carecheck: {one_line(exc.text())}", file=sys.stderr)
        sys.exit(1)
    except ValidationError as exc:  # a setting (environment, .env, *_FILE) the operator must fix
        print(f"carecheck: {settings_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("carecheck: đã dừng / interrupted", file=sys.stderr)
        sys.exit(130)
    except caught as exc:
        names = _names(exc)
        if "NoArgsIsHelpError" in names:  # click 8.2+, a bare group command (older: help, then Exit)
            ctx: Any = getattr(exc, "ctx", None)
            if ctx is not None:
                print(ctx.get_help())
            sys.exit(0)
        if "Exit" in names:
            sys.exit(int(getattr(exc, "exit_code", 0) or 0))
        if "Abort" in names:
            print("carecheck: đã huỷ / aborted", file=sys.stderr)
            sys.exit(1)
        if "UsageError" in names:
            print(usage_line(exc), file=sys.stderr)
            sys.exit(2)
        # any other ClickException (a file that cannot be opened, …): a problem, not a usage mistake
        print(f"carecheck: lỗi / error: {one_line(exc.format_message())}", file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
