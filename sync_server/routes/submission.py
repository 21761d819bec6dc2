"""HEAD/POST /submission (OpenRosa Form Submission API) with the duplicate, split-upload and edit rules.

Rules (docs/design.md §2; who may write is ``sync_server.writerule``): collaborators submit,
officers do not; one CouchDB doc per instanceID, created with its attachments in one round trip; an identical
resend is acknowledged and merges new attachments; different XML under the same instanceID is a 409 and the
first is kept; ``deprecatedID`` makes a new version of a record the author may edit (its own) and carries
forward that record's attachments the edit does not resend. XML in UTF-16 or ISO-8859-1 is stored as UTF-8
text (``openrosa.stored_xml``). Submissions are never rejected for their answers, only for their structure.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from core.errors import BadRequest
from sync_server import openrosa, writerule
from sync_server.auth import Account
from sync_server.bodies import read_body
from sync_server.deps import CurrentAccount, ReadyCtx, ServerContext, device_id
from sync_server.store import utc_now

router = APIRouter(tags=["openrosa"])
log = logging.getLogger("carecheck.sync.submission")
XML_PART = "xml_submission_file"


@router.head("/submission", status_code=204)
@router.get("/submission", status_code=204)
async def submission_head(
    request: Request, ctx: ReadyCtx, account: CurrentAccount, background: BackgroundTasks
) -> Response:
    # Collect sends HEAD first and needs 204 plus the size it may send in one POST (it splits above that).
    # An account that may not submit (an officer) hears it here, before the phone sends anything.
    writerule.may_submit(account)
    ctx.devices.touch_later(background, device_id(request), account, "head")
    return Response(
        status_code=204, headers={"X-OpenRosa-Accept-Content-Length": str(ctx.settings.max_submission_bytes)}
    )


@dataclass(frozen=True)
class FilePart:
    """A file part of the submission (its bytes, as the body is read whole: ``read_body``)."""

    filename: str | None
    content_type: str | None
    data: bytes


class _Malformed(Exception):
    def __init__(self, message: str):
        self.message = message


class _Parts:
    """python-multipart callbacks collecting every part in memory, as starlette's form parser reads them (its
    rules and messages: a name on every part, a filename makes a file, text fields decoded with the body's
    charset, ``limit`` per text field) without a spool file and an UploadFile per part: the body is in
    memory already (``read_body``) and a submission's parts are read whole."""

    def __init__(self, charset: str, limit: int):
        self.charset = charset
        self.limit = limit
        self.items: list[tuple[str, str | FilePart]] = []
        self._files = 0
        self._fields = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._name = ""
        self._filename: str | None = None
        self._data = bytearray()

    def on_part_begin(self) -> None:
        self._disposition, self._headers, self._data = b"", [], bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        name = self._header_name.lower()
        if name == b"content-disposition":
            self._disposition = self._header_value
        self._headers.append((name, self._header_value))
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _Malformed('The Content-Disposition header field "name" must be provided.')
        self._name = _decode(options[b"name"], self.charset)
        if b"filename" in options:
            self._files += 1
            if self._files > MAX_PARTS:
                raise _Malformed(f"Too many files. Maximum number of files is {MAX_PARTS}.")
            self._filename = _decode(options[b"filename"], self.charset)
        else:
            self._fields += 1
            if self._fields > MAX_PARTS:
                raise _Malformed(f"Too many fields. Maximum number of fields is {MAX_PARTS}.")
            self._filename = None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._filename is None and len(self._data) + end - start > self.limit:
            raise _Malformed(f"Part exceeded maximum size of {int(self.limit / 1024)}KB.")
        self._data += data[start:end]

    def on_part_end(self) -> None:
        if self._filename is None:
            self.items.append((self._name, _decode(self._data, self.charset)))
        else:
            ctype = next((v.decode("latin-1") for k, v in self._headers if k == b"content-type"), None)
            self.items.append((self._name, FilePart(self._filename, ctype, bytes(self._data))))


MAX_PARTS = 10_000


def _decode(raw: bytes | bytearray, charset: str) -> str:
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1")


def _parse_multipart(request: Request, body: bytes, limit: int) -> dict[str, list[str | FilePart]]:
    """The parts by field name: text fields as str, files as :class:`FilePart`; 400 for a malformed body."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise BadRequest(
            "Thiếu tệp phiếu xml_submission_file (cần gửi dạng multipart/form-data).",
            "No xml_submission_file part: submissions are multipart/form-data.",
        )
    _, params = parse_options_header(ctype)
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    try:
        if b"boundary" not in params:
            raise _Malformed("Missing boundary in multipart.")
        reader = _Parts(charset, limit)
        callbacks: Any = {
            name: getattr(reader, name)
            for name in (
                "on_part_begin",
                "on_part_data",
                "on_part_end",
                "on_header_field",
                "on_header_value",
                "on_header_end",
                "on_headers_finished",
            )
        }
        parser = MultipartParser(params[b"boundary"], callbacks)
        try:
            parser.write(body)
            parser.finalize()
        except FormParserError as exc:
            raise _Malformed("Invalid multipart data.") from exc
    except _Malformed as exc:
        raise BadRequest(
            f"Nội dung multipart không hợp lệ: {exc.message}.",
            f"The multipart body is malformed: {exc.message}.",
        ) from exc
    parts: dict[str, list[str | FilePart]] = {}
    for key, value in reader.items:
        parts.setdefault(key, []).append(value)
    return parts


def _bad_name(name: str) -> BadRequest:
    return BadRequest(
        f"Tên tệp đính kèm không hợp lệ: {name!r} (không được chứa thư mục hay '..').",
        f"Attachment name {name!r} is not allowed (no directories or '..').",
    )


@router.post("/submission")
async def submission_post(
    request: Request, ctx: ReadyCtx, account: CurrentAccount, background: BackgroundTasks
) -> Response:
    if account.role not in writerule.SUBMITTING_ROLES:
        # Refused before the body is read (an officer's phone need not upload 100 MB to hear no).
        await accept(ctx, account, b"", {}, None)
    limit = ctx.settings.max_submission_bytes
    body = await read_body(request, limit)
    parts = _parse_multipart(request, body, limit)
    xml_parts = parts.pop(XML_PART, [])
    if not xml_parts:
        raise BadRequest("Thiếu tệp phiếu xml_submission_file.", "The xml_submission_file part is missing.")
    first = xml_parts[0]
    xml = first.data if isinstance(first, FilePart) else str(first).encode("utf-8")
    attachments: dict[str, tuple[str, bytes]] = {}
    for field_name, values in parts.items():
        for v in values:
            if not isinstance(v, FilePart):
                continue  # plain form fields (e.g. Enketo's extras) carry nothing we store
            name = v.filename or field_name
            if not openrosa.safe_attachment_name(name) or not openrosa.safe_attachment_name(field_name):
                raise _bad_name(name if not openrosa.safe_attachment_name(name) else field_name)
            attachments[name] = (v.content_type or "application/octet-stream", v.data)
    dev = device_id(request)
    status, message = await accept(ctx, account, xml, attachments, dev)
    ctx.devices.touch_later(background, dev, account, "submission")
    return Response(
        content=openrosa.response_xml(message, "submit_success"),
        status_code=status,
        headers={"Content-Type": openrosa.XML_CONTENT_TYPE},
    )


async def accept(
    ctx: ServerContext,
    account: Account,
    xml: bytes,
    attachments: dict[str, tuple[str, bytes]],
    device: str | None,
) -> tuple[int, str]:
    """Apply the rules and store; returns (HTTP status, message). Raises Problems for every refusal.

    A new record of a cached form needs no I/O before its write: it is checked and built on the event loop
    and written there (group commit), with no thread hop. An edit (it reads the record it supersedes), a form
    not in the cache, an id already taken and recording a refusal go to the thread pool.
    """
    try:
        writerule.may_submit(account)
        inst = openrosa.parse_instance(xml)
        if inst.deprecated_id or not ctx.forms.cached(inst.form_id, inst.version or None):
            doc, to_store = await run_in_threadpool(_prepare, ctx, account, xml, inst, attachments, device)
        else:
            doc, to_store = _prepare(ctx, account, xml, inst, attachments, device)
        return await _store(ctx, doc, to_store)
    except writerule.Refusal as exc:
        refused = [(exc.doc_id, exc)]
        await run_in_threadpool(
            writerule.record_refusals, ctx.couch, ctx.settings, account, "POST /submission", refused
        )
        raise


def _prepare(
    ctx: ServerContext,
    account: Account,
    xml: bytes,
    inst: openrosa.Instance,
    attachments: dict[str, tuple[str, bytes]],
    device: str | None,
) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """The document to create and its attachments, or a refusal (the rules of the module docstring)."""
    writerule.check_instance_id(inst.instance_id)
    form = ctx.forms.require(inst.form_id, inst.version or None)
    expected = openrosa.referenced_attachments(inst.root, form.binary_paths)
    to_store = dict(attachments)
    deprecated = inst.deprecated_id if inst.deprecated_id and inst.deprecated_id != inst.instance_id else None
    if deprecated:
        try:
            old = writerule.check_edit(account, deprecated, ctx.submissions.get(deprecated))
        except writerule.Refusal as exc:
            exc.doc_id = inst.instance_id
            raise
        # Carry forward attachments the edit references but does not resend (Collect sends only changes):
        # only from the record being edited, which the rule just checked is the author's own.
        for name in expected:
            if name not in to_store and name in (old.get("_attachments") or {}):
                data = ctx.submissions.attachment(old["_id"], name)
                if data is not None:
                    to_store[name] = (
                        str(old["_attachments"][name].get("content_type") or "application/octet-stream"),
                        data,
                    )
    text = openrosa.stored_xml(xml, inst.root)
    doc = {
        "_id": inst.instance_id,
        "type": "submission",
        "form_id": inst.form_id,
        "form_version": form.built.version,
        "xml": text.text,
        "xml_sha256": hashlib.sha256(text.text.encode("utf-8")).hexdigest(),
        "deprecated_id": deprecated,
        "device_id": device,
        "org_unit": writerule.org_unit(inst.root),
        "attachments_expected": expected,
        **writerule.stamp(account, ctx.settings.node_name, utc_now()),
    }
    if text.original_encoding:
        doc["original_encoding"] = text.original_encoding
        doc["original_sha256"] = text.original_sha256
    return doc, to_store


async def _store(
    ctx: ServerContext, doc: dict[str, Any], to_store: dict[str, tuple[str, bytes]]
) -> tuple[int, str]:
    result = await ctx.submissions.store(doc, to_store)
    log.info(
        "submission %s form=%s v=%s outcome=%s +att=%d",
        doc["_id"],
        doc["form_id"],
        doc["form_version"],
        result.outcome,
        len(result.added_attachments),
    )
    if result.outcome == "conflict":
        refusal = writerule.overwrite_refusal(doc["_id"])
        refusal.doc_id = doc["_id"]
        raise refusal
    if result.outcome == "created":
        return 201, "Đã gửi thành công / Sent successfully"
    if result.added_attachments:
        return 201, (
            f"Đã nhận trước đó; đã bổ sung {len(result.added_attachments)} tệp đính kèm / "
            f"Already received; {len(result.added_attachments)} attachment(s) added"
        )
    return 202, "Đã nhận trước đó / Already received"
