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


def related_doc(raw: bytes, content_type: str) -> dict[str, Any]:
    """A document as CouchDB's replicator PUTs one with attachments (``multipart/related``): the JSON part,
    then one part per attachment marked ``follows`` (named by ``Content-Disposition`` filename, else in the
    JSON's order; ``encoding: gzip`` ones gunzipped). Returns the doc with those attachments inline (base64),
    as in ``_bulk_docs``; stubs stay stubs. Raises 400 on a body that is not such a document."""
    import base64
    import gzip

    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if ctype != b"multipart/related" or not boundary:
        raise BadRequest("Cần multipart/related có boundary.", "Expected multipart/related with a boundary.")
    parts: list[tuple[dict[str, str], bytearray]] = []
    field: list[bytes] = [b"", b""]

    def header_field(data: bytes, start: int, end: int) -> None:
        field[0] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        field[1] += data[start:end]

    def header_end() -> None:
        parts[-1][0][field[0].decode("latin-1").lower()] = field[1].decode("latin-1")
        field[0], field[1] = b"", b""

    def part_data(data: bytes, start: int, end: int) -> None:
        parts[-1][1].extend(data[start:end])

    parser = MultipartParser(boundary, {  # type: ignore[arg-type]
        "on_part_begin": lambda: parts.append(({}, bytearray())),
        "on_header_field": header_field, "on_header_value": header_value, "on_header_end": header_end,
        "on_part_data": part_data,
    })
    try:
        parser.write(raw)
        parser.finalize()
        doc = json.loads(bytes(parts[0][1])) if parts else None
    except (ValueError, IndexError, RecursionError) as exc:
        raise BadRequest(
            "Tài liệu multipart/related hỏng.", f"The multipart/related document is damaged: {exc}."
        ) from None
    if not isinstance(doc, dict):
        raise BadRequest("Phần đầu phải là tài liệu JSON.", "The first part must be the JSON document.")
    atts = doc.get("_attachments") or {}
    if not isinstance(atts, dict):
        raise BadRequest("_attachments phải là object.", "_attachments must be an object.")
    following = [str(n) for n, a in atts.items() if isinstance(a, dict) and a.get("follows")]
    bodies = parts[1:]
    if len(bodies) != len(following):
        raise BadRequest(
            "Số tệp đính kèm không khớp tài liệu.",
            f"The document names {len(following)} attachment(s) that follow; {len(bodies)} part(s) came.",
        )
    named = {_filename(h["content-disposition"]): data for h, data in bodies if "content-disposition" in h}
    for i, name in enumerate(following):
        data = bytes(named[name]) if name in named else bytes(bodies[i][1])
        att = dict(atts[name])
        if att.pop("encoding", None) == "gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise BadRequest(f"Tệp {name} nén hỏng.", f"Attachment {name} is badly gzipped.") from exc
        for key in ("follows", "length", "encoded_length", "digest", "revpos"):
            att.pop(key, None)
        att["data"] = base64.b64encode(data).decode("ascii")
        atts[name] = att
    return doc


def _filename(disposition: str) -> str:
    from python_multipart.multipart import parse_options_header

    return parse_options_header(disposition)[1].get(b"filename", b"").decode("utf-8", "replace")
