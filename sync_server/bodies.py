"""Request bodies read within a limit (413 past it), JSON bodies checked for shape (400), for every route."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import Request
from starlette.requests import ClientDisconnect

from core.errors import BadRequest, TooLarge

log = logging.getLogger("carecheck.sync.bodies")


class ClientGone(BadRequest):
    """The client went away mid-body; nobody reads the answer, and it is not a server error."""

    def __init__(self) -> None:
        super().__init__(
            "Kết nối bị ngắt khi đang gửi.", "The client disconnected during the upload.", code="client_gone"
        )


def too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"Dữ liệu gửi lên quá lớn (giới hạn {limit:,} byte). Hãy gửi lại để máy chia thành nhiều lần.",
        f"The request body is larger than {limit:,} bytes. Send again in smaller parts.",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, counted as it streams (chunked bodies have no Content-Length); 413 past the limit.

    A client that disconnects mid-upload (a phone losing coverage) is one info line, not a traceback.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    buf = bytearray()
    try:
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise too_large(limit)
    except ClientDisconnect:
        log.info("client disconnected during upload on %s after %d bytes", request.url.path, len(buf))
        raise ClientGone() from None
    return bytes(buf)


async def json_body(request: Request, limit: int) -> Any:
    """The body parsed as JSON (400 when it is not), read within ``limit`` (413)."""
    raw = await read_body(request, limit)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(
            "Nội dung gửi lên không phải JSON hợp lệ.", "The request body is not valid JSON."
        ) from exc


def json_object(body: Any, what: str = "The request body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"{what} phải là một đối tượng JSON.", f"{what} must be a JSON object.")
    return body
