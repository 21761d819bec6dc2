"""All CouchDB access. Nothing else imports cloudant.

Speaks only the CouchDB HTTP API (python-cloudant's session for transport), so it runs unchanged on Apache
CouchDB 3 and on pouchdb-server. Sequences (``seq``) are opaque strings: never compare or add them.
Callers see only our ``Problem`` types: ``StoreUnavailable`` when the store cannot be reached,
``DocExists`` when a create loses the race (CouchDB's ``_rev`` conflict is our lock).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit

import httptools
import requests
from cloudant.client import CouchDB
from cloudant.error import CloudantException
from requests.adapters import HTTPAdapter
from urllib3 import BaseHTTPResponse
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from core.errors import ConfigError, Problem, StoreUnavailable
from core.settings import Settings

Doc = dict[str, Any]
ADMIN_ONLY: Doc = {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": ["_admin"]}}


class DocExists(Problem):
    """A document with that id already exists (the create lost the race or is a resend)."""

    status = 409
    code = "doc_exists"


def _q(docid: str) -> str:
    return quote(docid, safe="")


def _unavailable(action: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(
        f"Kho dữ liệu tạm thời không truy cập được ({action}). Phiếu vẫn lưu trên máy; hãy gửi lại sau.",
        f"The data store is unavailable ({action}: {type(exc).__name__}). "
        "The record stays on the phone; send again later.",
    )


def _refused(status: int, text: str, action: str) -> Problem:
    """The Problem for a store answer outside the expected statuses (one mapping for every request path)."""
    if status >= 500:
        return StoreUnavailable(
            f"Kho dữ liệu báo lỗi ({action}). Hãy gửi lại sau.",
            f"The data store failed ({action}: HTTP {status}). Send again later.",
        )
    if status in (401, 403):
        return ConfigError(
            f"CouchDB refused our credentials while trying to {action} (HTTP {status}); "
            "check CARECHECK_COUCHDB_USER / CARECHECK_COUCHDB_PASSWORD."
        )
    return Problem(f"CouchDB: {action} failed: HTTP {status} {text[:200]}")


@contextmanager
def _couch_errors(action: str) -> Iterator[None]:
    try:
        yield
    except (CloudantException, requests.RequestException) as exc:
        raise _unavailable(action, exc) from exc


class _DroppedConnectionRetry(Retry):
    """Retry a request whose pooled keep-alive connection the server closed under it, never a timeout.

    CouchDB (and Node's HTTP server under pouchdb-server) closes idle keep-alive connections; a request sent
    in the instant the server closes one fails with "connection reset / remote end closed" although the
    server never saw it. A reads-only retry of that (GET/HEAD, and a refused connect where nothing was sent)
    is safe; writes are not retried (a PUT the server applied would come back as a conflict), and a timeout
    is answered at once (a slow or hung store must not cost three timeouts).
    """

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if isinstance(error, Urllib3Timeout):  # no retry left: raises what requests turns into a Timeout
            Retry(total=0, read=False).increment(method, url, response, error, _pool, _stacktrace)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def _adapter() -> HTTPAdapter:
    return HTTPAdapter(max_retries=_DroppedConnectionRetry(
        total=2, connect=2, read=2, status=0, redirect=0, other=0,
        allowed_methods=frozenset({"GET", "HEAD"}), backoff_factor=0.1, raise_on_status=False))


class _Answer:
    """httptools callbacks: one answer's status, keep-alive, body, and whether it has all arrived."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.keep_alive = False
        self.body: list[bytes] = []
        self.complete = False

    def on_headers_complete(self) -> None:
        # Read here: once the message is complete the parser has reset for the next one.
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.complete = True


_Conn = tuple[asyncio.AbstractEventLoop, asyncio.StreamReader, asyncio.StreamWriter]
IDLE_REUSE_S = 2.0  # well under the stores' idle keep-alive timeouts (Node's 5 s; CouchDB's are longer)


class HotPost:
    """``POST`` of a JSON body on the event loop over pooled keep-alive connections: the intake's one write.

    The submission write (``sync_server.groupcommit``) through python-cloudant's requests session cost ~2 ms
    of CPU per call (request preparation, cookies, hooks, urllib3, http.client's e-mail header parser) and a
    hop to a worker thread and back (~1 ms more: the two threads hand the GIL to each other). This writes the
    request in one go from the event loop and parses the answer with httptools (uvicorn's C parser).
    Same store, URL, credentials, timeout and error mapping as :meth:`Couch.request`; no proxies (the sync
    server addresses the store directly). A body is sent once and never re-sent: a write the store applied
    would come back as a conflict. A pooled connection the store closed while idle (CouchDB and Node close
    idle keep-alive connections) is noticed before sending and replaced, as urllib3 does; connections belong
    to the event loop that opened them.
    """

    def __init__(self, url: str, user: str | None, password: str | None, timeout: float):
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default_port else f"{host}:{self.port}"
        if user is None and parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
        self.auth = (
            "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii") if user else None
        )
        self.timeout = timeout
        self._tls_context = ssl.create_default_context() if self.tls else None
        self._idle: list[tuple[float, _Conn]] = []  # (when it went idle, connection)

    async def _connection(self) -> _Conn:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        while self._idle:
            since, conn = self._idle.pop()
            # Reused only while surely open: a store closes idle keep-alive connections (Node after 5 s), and
            # a write sent in the instant it does is lost and never re-sent (a 503 for the phones in it).
            fresh = now - since < IDLE_REUSE_S
            if fresh and conn[0] is loop and not conn[1].at_eof() and not conn[2].is_closing():
                return conn
            _close(conn)
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self._tls_context, server_hostname=self.host if self.tls else None
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return loop, reader, writer

    async def post(self, path: str, body: bytes, *, action: str, ok: tuple[int, ...]) -> bytes:
        """The answer's body when its status is in ``ok``; the Problem :meth:`Couch.request` would raise
        otherwise (StoreUnavailable when the store cannot be reached, times out or the connection drops)."""
        head = (
            f"POST {self.prefix}/{path.lstrip('/')} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            + (f"Authorization: {self.auth}\r\n" if self.auth else "")
            + "Content-Type: application/json\r\nAccept: application/json\r\nAccept-Encoding: identity\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        answer = _Answer()
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._connection()
                conn[2].write(head + body)
                while not answer.complete:
                    data = await conn[1].read(65536)
                    if not data:
                        raise ConnectionResetError("the store closed the connection before answering")
                    answer.parser.feed_data(data)
        except (OSError, httptools.HttpParserError) as exc:  # TimeoutError is an OSError
            if conn is not None:
                _close(conn)
            raise _unavailable(action, exc) from exc
        except BaseException:  # cancelled mid-request: the connection is out of step
            if conn is not None:
                _close(conn)
            raise
        if answer.keep_alive:
            self._idle.append((time.monotonic(), conn))
        else:
            _close(conn)
        data = b"".join(answer.body)
        if answer.status in ok:
            return data
        raise _refused(answer.status, data.decode("utf-8", "replace"), action)

    def close(self) -> None:
        while self._idle:
            _close(self._idle.pop()[1])


def _close(conn: _Conn) -> None:
    try:
        conn[2].close()
    except RuntimeError:  # its event loop is closed already
        pass


class Couch:
    """A connection to one CouchDB server (admin or a scoped user)."""

    def __init__(self, url: str, user: str | None, password: str | None, *, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._hot = HotPost(self.url, user, password, timeout)
        with _couch_errors("connect"):
            if user:
                self.client = CouchDB(
                    user, password, url=self.url, connect=False, timeout=timeout, use_basic_auth=True,
                    adapter=_adapter(),
                )
            else:
                self.client = CouchDB(
                    None, None, url=self.url, admin_party=True, connect=False, timeout=timeout,
                    adapter=_adapter(),
                )
            self.client.connect()
        self.session: requests.Session = self.client.r_session

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 30.0, start: bool = True) -> Couch:
        """The configured store; the embedded one is started on demand unless ``start`` is False (read-only
        commands never start or stop services: they say the store is not running)."""
        url = settings.couchdb_url
        if not url:
            from core.services import ensure_embedded_couch, running_embedded_couch

            if start:
                url = ensure_embedded_couch(settings)
            elif (found := running_embedded_couch(settings)) is not None:
                url = found
            else:
                raise ConfigError(
                    "Kho dữ liệu nhúng đang dừng (chạy `carecheck local start` để bật).",
                    "The embedded store is stopped (`carecheck local start` starts it).",
                )
        return cls(url, settings.couchdb_user, settings.couchdb_password, timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self._hot.close()

    async def hot_post(
        self, path: str, body: bytes, *, action: str, ok: tuple[int, ...] = (200, 201, 202)
    ) -> bytes:
        """``POST`` a JSON body from the event loop on the lean keep-alive path (:class:`HotPost`)."""
        return await self._hot.post(path, body, action=action, ok=ok)

    # --- raw HTTP through cloudant's session ---
    def request(
        self, method: str, path: str, *, action: str, ok: tuple[int, ...] = (200, 201, 202), **kw: Any
    ) -> requests.Response:
        # python-cloudant's session imposes its own timeout; a longer one (long-poll) swaps it for the call.
        timeout = kw.pop("timeout", None)
        with _couch_errors(action):
            if timeout is None or timeout == self.timeout:
                r = self.session.request(method, f"{self.url}/{path.lstrip('/')}", **kw)
            else:
                saved = self.session._timeout  # type: ignore[attr-defined]
                self.session._timeout = timeout  # type: ignore[attr-defined]
                try:
                    r = self.session.request(method, f"{self.url}/{path.lstrip('/')}", **kw)
                finally:
                    self.session._timeout = saved  # type: ignore[attr-defined]
        if r.status_code in ok:
            return r
        raise _refused(r.status_code, r.text, action)

    # --- databases ---
    def ensure_db(self, name: str) -> None:
        """Create the database if missing and make sure it is admin-only.

        Every carecheck database holds children's data or credentials. Apache CouchDB 3 creates databases
        admin-only, but pouchdb-server (and a CouchDB whose default was changed) leaves them readable by
        anyone: an empty ``_security`` gets members = role ``_admin``; one an operator set is left alone.
        """
        self.request("PUT", _q(name), action=f"create database {name}", ok=(201, 202, 412))
        sec = self.request("GET", f"{_q(name)}/_security", action=f"read security of {name}").json()
        members = sec.get("members") or {}
        if not members.get("names") and not members.get("roles"):
            self.put_security(name, ADMIN_ONLY)

    def db_exists(self, name: str) -> bool:
        r = self.request("GET", _q(name), action=f"read database {name}", ok=(200, 404))
        return r.status_code == 200

    def db_info(self, name: str) -> Doc:
        return dict(self.request("GET", _q(name), action=f"read database {name}").json())

    def delete_db(self, name: str) -> None:
        self.request("DELETE", _q(name), action=f"delete database {name}", ok=(200, 202, 404))

    def put_security(self, name: str, security: Doc) -> None:
        self.request("PUT", f"{_q(name)}/_security", json=security, action=f"set security on {name}")

    # --- documents ---
    def get(self, db: str, docid: str, **params: Any) -> Doc | None:
        r = self.request(
            "GET", f"{_q(db)}/{_q(docid)}", params=_params(params), action=f"read {docid}", ok=(200, 404)
        )
        return None if r.status_code == 404 else dict(r.json())

    def create(self, db: str, doc: Doc, attachments: dict[str, tuple[str, bytes]] | None = None) -> str:
        """Create a new document atomically, attachments inline; raise DocExists if the id is taken."""
        body = dict(doc)
        if attachments:
            body["_attachments"] = {
                name: {"content_type": ctype, "data": base64.b64encode(data).decode("ascii")}
                for name, (ctype, data) in attachments.items()
            }
        r = self.request(
            "PUT",
            f"{_q(db)}/{_q(doc['_id'])}",
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
            action=f"store {doc['_id']}",
            ok=(201, 202, 403, 409),
        )
        # A validate_doc_update refusal of a create (403 forbidden) means the id is taken by other content
        # (the append-only rule): a store that validates before its revision check answers so, not 409.
        if r.status_code == 409 or (r.status_code == 403 and _forbidden(r)):
            raise DocExists(f"Document {doc['_id']} already exists.")
        if r.status_code == 403:
            raise ConfigError(
                f"CouchDB refused our credentials while trying to store {doc['_id']} (HTTP 403); "
                "check CARECHECK_COUCHDB_USER / CARECHECK_COUCHDB_PASSWORD."
            )
        return str(r.json()["rev"])

    def save(self, db: str, doc: Doc) -> str:
        """Create or update (doc carries ``_rev`` for updates). Raises DocExists on a conflict."""
        r = self.request(
            "PUT",
            f"{_q(db)}/{_q(doc['_id'])}",
            data=json.dumps(doc),
            headers={"Content-Type": "application/json"},
            action=f"save {doc['_id']}",
            ok=(201, 202, 409),
        )
        if r.status_code == 409:
            raise DocExists(f"Document {doc['_id']} changed meanwhile.")
        return str(r.json()["rev"])

    def delete(self, db: str, docid: str, rev: str) -> None:
        self.request(
            "DELETE",
            f"{_q(db)}/{_q(docid)}",
            params={"rev": rev},
            action=f"delete {docid}",
            ok=(200, 202, 404),
        )

    def put_attachment(self, db: str, docid: str, rev: str, name: str, content_type: str, data: bytes) -> str:
        # python-cloudant's put_attachment sends the rev as If-Match, which pouchdb-server answers with 409;
        # ?rev= works on both servers (docs/design.md §3).
        r = self.request(
            "PUT",
            f"{_q(db)}/{_q(docid)}/{_q(name)}",
            params={"rev": rev},
            data=data,
            headers={"Content-Type": content_type},
            action=f"store attachment {name}",
            ok=(201, 202, 409),
        )
        if r.status_code == 409:
            raise DocExists(f"Document {docid} changed while adding {name}.")
        return str(r.json()["rev"])

    def get_attachment(self, db: str, docid: str, name: str) -> bytes | None:
        r = self.request(
            "GET", f"{_q(db)}/{_q(docid)}/{_q(name)}", action=f"read attachment {name}", ok=(200, 404)
        )
        return None if r.status_code == 404 else r.content

    def bulk_docs(self, db: str, docs: list[Doc], *, new_edits: bool = True) -> list[Doc]:
        body: Doc = {"docs": docs}
        if not new_edits:
            body["new_edits"] = False
        r = self.request("POST", f"{_q(db)}/_bulk_docs", json=body, action="bulk write")
        return list(r.json())

    def all_docs(self, db: str, **params: Any) -> Doc:
        return dict(
            self.request("GET", f"{_q(db)}/_all_docs", params=_params(params), action="list documents").json()
        )

    def all_docs_by_keys(self, db: str, keys: list[str]) -> list[Doc]:
        """``POST _all_docs?include_docs=true`` for these ids: rows in key order (``doc`` null if deleted)."""
        r = self.request(
            "POST",
            f"{_q(db)}/_all_docs",
            params={"include_docs": "true"},
            json={"keys": keys},
            action="read documents",
        )
        return list(r.json().get("rows", []))

    def find(
        self,
        db: str,
        selector: Doc,
        *,
        fields: list[str] | None = None,
        limit: int = 1000,
        sort: list[Any] | None = None,
        bookmark: str | None = None,
    ) -> Doc:
        body: Doc = {"selector": selector, "limit": limit}
        if fields:
            body["fields"] = fields
        if sort:
            body["sort"] = sort
        if bookmark:
            body["bookmark"] = bookmark
        return dict(self.request("POST", f"{_q(db)}/_find", json=body, action="query").json())

    def ensure_index(self, db: str, fields: list[str], name: str) -> None:
        self.request(
            "POST",
            f"{_q(db)}/_index",
            json={"index": {"fields": fields}, "name": name, "type": "json"},
            action=f"create index {name}",
        )

    def put_design(self, db: str, ddoc: Doc) -> None:
        """Create or replace a design document if its content differs."""
        current = self.get(db, ddoc["_id"])
        body = dict(ddoc)
        if current is not None:
            if all(current.get(k) == v for k, v in ddoc.items() if k != "_rev"):
                return
            body["_rev"] = current["_rev"]
        self.save(db, body)

    def view(self, db: str, ddoc: str, view: str, **params: Any) -> Doc:
        return dict(
            self.request(
                "GET",
                f"{_q(db)}/_design/{ddoc}/_view/{view}",
                params=_params(params),
                action=f"read view {ddoc}/{view}",
            ).json()
        )

    # --- changes feed ---
    def changes(
        self,
        db: str,
        since: str | None = None,
        *,
        limit: int = 500,
        include_docs: bool = True,
        timeout: float | None = None,
        **params: Any,
    ) -> tuple[list[Doc], str]:
        """One page of the changes feed after ``since`` (opaque). Returns (results, last_seq as text).

        We GET through the session and parse JSON ourselves: python-cloudant's ``db.changes()`` expects
        CouchDB's one-change-per-line layout and yields nothing on pouchdb-server (docs/design.md §3).
        """
        p: dict[str, Any] = {"limit": limit, "include_docs": include_docs, **params}
        if since not in (None, ""):
            p["since"] = since
        r = self.request(
            "GET",
            f"{_q(db)}/_changes",
            params=_params(p),
            action="read changes",
            headers={"Accept-Encoding": "identity"},
            timeout=timeout or self.timeout,
        )
        data = r.json()
        return list(data.get("results", [])), str(data.get("last_seq", since or "0"))

    def update_seq(self, db: str) -> str:
        return str(self.db_info(db).get("update_seq", "0"))


def _forbidden(r: requests.Response) -> bool:
    """A validate_doc_update refusal (``{"error": "forbidden"}``), as opposed to refused credentials."""
    try:
        return bool(r.json().get("error") == "forbidden")
    except ValueError:
        return False


def _params(params: dict[str, Any]) -> dict[str, Any]:
    """CouchDB wants JSON for key/startkey/endkey and lowercase booleans."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k in ("key", "keys", "startkey", "endkey", "start_key", "end_key"):
            out[k] = json.dumps(v)
        elif isinstance(v, bool):
            out[k] = "true" if v else "false"
        else:
            out[k] = v
    return out
