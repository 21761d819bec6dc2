"""Users (province admin; district admin for their district): create collaborator and officer accounts in
the admin's area, reset passwords, disable/enable; for a collaborator the ODK Collect settings QR code."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from console import audit, odk
from console.pages.field import in_area
from console.pages.overview import level_of
from console.pages.render import render
from console.sessions import Officer, area_scope, client_address, end_sessions, read_form, require_officer
from core import orgunits
from core.errors import BadRequest, Forbidden, NotFound
from core.orgunits import may_see
from sync_server.auth import ROLES
from sync_server.deps import ServerContext

router = APIRouter(tags=["console"])
# Account names created here go into URLs (/users/<name>/…) and phones' settings: plain ASCII.
NAME = re.compile(r"[A-Za-z0-9._-]{2,64}")
Admin = Annotated[Officer, Depends(require_officer(admin=True, roles=("district", "province")))]


def creatable_roles(officer: Officer) -> tuple[str, ...]:
    return (
        ("collaborator", "commune", "district", "province")
        if officer.role == "province"
        else ("collaborator", "commune", "district")
    )


def _target(ctx: ServerContext, officer: Officer, visible: str, name: str) -> dict[str, Any]:
    """An account the admin may manage: in their area, no province account unless they are province, never
    an edge node's (those are enrolled and revoked with `carecheck edge`)."""
    acc = ctx.accounts.get(name)
    if (
        acc is None
        or acc.get("role") not in ROLES
        or not in_area(visible, str(acc.get("area")))
        or (acc.get("role") == "province" and officer.role != "province")
    ):
        raise NotFound("Không có tài khoản này trong vùng của bạn.", "No such account in your area.")
    return acc


def _audit(
    ctx: ServerContext, request: Request, officer: Officer, kind: str, target: str, detail: str
) -> None:
    audit.record(
        ctx.couch,
        ctx.settings,
        kind,
        actor=officer.name,
        role=officer.role,
        area=officer.area,
        route=f"POST {request.url.path}",
        reason="operator",
        client=client_address(request),
        detail=f"account {target}; {detail}",
    )


def _odk(request: Request, ctx: ServerContext, name: str, area: str, password: str | None) -> dict[str, str]:
    settings = odk.collect_settings(ctx.base_url(request), name, f"carecheck {area}", password)
    text = odk.payload(settings)
    return {"payload": text, "svg": odk.qr_svg(text), "server_url": settings["general"]["server_url"]}


@router.get("/users", response_model=None)
async def users(request: Request, officer: Admin, done: str | None = None) -> Response:
    """Accounts of the admin's area (area_scope)."""
    ctx: ServerContext = request.app.state.ctx
    visible = area_scope(officer)
    rows = [
        a
        for a in await run_in_threadpool(ctx.accounts.list)
        if a["role"] in ROLES
        and in_area(visible, str(a["area"]))
        and (a["role"] != "province" or officer.role == "province")
    ]
    return render(
        request, officer, "users.html", accounts=rows, roles=creatable_roles(officer), done=done, created=None
    )


@router.post("/users", response_model=None)
async def create(request: Request, officer: Admin) -> Response:
    """A new account in the admin's area; for a collaborator the page shows the ODK Collect QR code once
    with the password in it (it is not stored in plain anywhere, so later QR codes carry only the user)."""
    ctx: ServerContext = request.app.state.ctx
    form = await read_form(request, officer)
    name, password, role = form.get("username", "").strip(), form.get("password", ""), form.get("role", "")
    area = form.get("area", "").strip() or (orgunits.PROVINCE_CODE if role == "province" else "")
    visible = area_scope(officer)
    if not NAME.fullmatch(name):
        raise BadRequest(
            "Tên đăng nhập: 2–64 ký tự chữ không dấu, số, '.', '_' hoặc '-'.",
            "User name: 2-64 characters of letters, digits, '.', '_' or '-'.",
        )
    if role not in creatable_roles(officer):
        raise Forbidden(
            f"Bạn không tạo được tài khoản vai trò {role}.", f"You may not create {role} accounts."
        )
    if role != "province" and (
        not area
        or area == orgunits.PROVINCE_CODE
        or area not in orgunits.communes()
        and area not in orgunits.districts()
    ):
        raise BadRequest("Cần mã huyện hoặc mã xã hợp lệ.", "A valid district or commune code is needed.")
    if not may_see(visible, level_of(area), area):
        raise Forbidden(f"Vùng {area} không thuộc vùng quản lý của bạn.", f"Area {area} is not in your area.")
    make_admin = form.get("admin") == "on" and officer.role == "province" and role in ("district", "province")
    acc = await run_in_threadpool(ctx.accounts.add, name, password, role, area, admin=make_admin)
    await run_in_threadpool(
        _audit,
        ctx,
        request,
        officer,
        audit.ACCOUNT_CREATED,
        acc.name,
        f"role {acc.role}, area {acc.area}{', admin' if acc.admin else ''}",
    )
    created = {"name": acc.name, "role": acc.role, "area": acc.area}
    if acc.role == "collaborator":
        created.update(_odk(request, ctx, acc.name, acc.area, password))
    rows = [
        a
        for a in await run_in_threadpool(ctx.accounts.list)
        if a["role"] in ROLES
        and in_area(visible, str(a["area"]))
        and (a["role"] != "province" or officer.role == "province")
    ]
    return render(
        request,
        officer,
        "users.html",
        status=201,
        accounts=rows,
        roles=creatable_roles(officer),
        done="created",
        created=created,
    )


@router.post("/users/{name}/password", response_model=None)
async def reset_password(request: Request, officer: Admin, name: str) -> Response:
    """A new password for an account of the admin's area (area_scope via _target)."""
    ctx: ServerContext = request.app.state.ctx
    form = await read_form(request, officer)
    await run_in_threadpool(_target, ctx, officer, area_scope(officer), name)
    await run_in_threadpool(ctx.accounts.set_password, name, form.get("password", ""))
    await run_in_threadpool(end_sessions, ctx, name)  # a session opened with the old password ends too
    await run_in_threadpool(
        _audit, ctx, request, officer, audit.ACCOUNT_PASSWORD_RESET, name, "password reset"
    )
    return RedirectResponse("/users?done=password", status_code=303)


@router.post("/users/{name}/active", response_model=None)
async def set_active(request: Request, officer: Admin, name: str) -> Response:
    """Disable or enable an account of the admin's area (never one's own)."""
    ctx: ServerContext = request.app.state.ctx
    form = await read_form(request, officer)
    await run_in_threadpool(_target, ctx, officer, area_scope(officer), name)
    if name == officer.name:
        raise BadRequest("Không tự khoá tài khoản của mình được.", "You cannot disable your own account.")
    active = form.get("active") == "1"
    await run_in_threadpool(ctx.accounts.set_active, name, active)
    kind = audit.ACCOUNT_ENABLED if active else audit.ACCOUNT_DISABLED
    await run_in_threadpool(_audit, ctx, request, officer, kind, name, "enabled" if active else "disabled")
    return RedirectResponse("/users?done=" + ("enabled" if active else "disabled"), status_code=303)


@router.get("/users/{name}/odk", response_model=None)
async def odk_settings(request: Request, officer: Admin, name: str) -> Response:
    """A collaborator's ODK Collect QR code and settings (server URL and user name; no password)."""
    ctx: ServerContext = request.app.state.ctx
    acc = await run_in_threadpool(_target, ctx, officer, area_scope(officer), name)
    if acc.get("role") != "collaborator":
        raise NotFound(
            "Chỉ tài khoản cộng tác viên mới có mã QR.", "Only collaborator accounts have a QR code."
        )
    created = {
        "name": name,
        "role": "collaborator",
        "area": acc["area"],
        **_odk(request, ctx, name, str(acc["area"]), None),
    }
    return render(request, officer, "odk.html", created=created)
