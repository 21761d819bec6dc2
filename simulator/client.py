"""An OpenRosa client that sends like ODK Collect: formList, download, HEAD then multipart POST, retries.

Behaviour copied from Collect (docs.getodk.org/openrosa-form-submission): ``HEAD /submission?deviceID=…`` must
answer 204 and announces ``X-OpenRosa-Accept-Content-Length``; above that size the attachments are split over
several POSTs, each repeating the full XML; only 201/202 mean success (200 is a captive portal). Timeouts,
dropped connections, 5xx and 503 are retried with exponential back-off and jitter (``Retry-After`` honoured,
total time bounded); a resend after a lost response is answered "already received". Other 4xx are reported as
rejected with the server's message, never retried forever.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urljoin

import httpx
from lxml import etree

from core.errors import Problem
from core.xmlsafe import hardened_parser
from simulator.fill import Filled

NS_RESPONSE = "http://openrosa.org/http/response"
NS_XFORMS_LIST = "http://openrosa.org/xforms/xformsList"
DEFAULT_ACCEPT_LENGTH = 10_000_000  # what Collect assumes when the server does not say
PART_OVERHEAD = 512                 # multipart headers and boundaries per part, generously
_PARSER = hardened_parser()

Status = Literal["accepted", "duplicate", "rejected", "failed"]


@dataclass(frozen=True)
class RemoteForm:
    """One ``<xform>`` of the server's formList."""

    form_id: str
    name: str
    version: str
    hash: str
    download_url: str


@dataclass
class Outcome:
    """What happened to one record: accepted (new), duplicate (already received), rejected (4xx) or failed."""

    instance_id: str
    status: Status
    http_status: int | None
    message: str
    attempts: int = 0   # HTTP requests made for this record, POSTs and retries included
    posts: int = 0      # POSTs the record needed (more than one when the attachments were split)
    retries: int = 0    # requests repeated after a timeout, a dropped connection or a 5xx
    seconds: float = 0.0
    tag: str = ""       # caller's label (the simulator puts the district code here)

    @property
    def ok(self) -> bool:
        return self.status in ("accepted", "duplicate")


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None, status: int | None = None):
        super().__init__(reason)
        self.reason, self.wait, self.status = reason, wait, status


def openrosa_message(body: bytes) -> str:
    """The text of ``<OpenRosaResponse><message>`` (empty when the body is not one)."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return ""
    msgs = root.findall(f".//{{{NS_RESPONSE}}}message") or root.findall(".//message")
    return " ".join((m.text or "").strip() for m in msgs).strip()


def _is_duplicate(status: int, message: str) -> bool:
    low = message.lower()
    return status == 202 or "already received" in low or "đã nhận trước đó" in low


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def split_parts(xml: bytes, attachments: dict[str, tuple[str, bytes]], limit: int) -> list[list[str]]:
    """Attachment names per POST so each POST (full XML + its attachments) stays within ``limit`` bytes.

    Collect's rule: start a new POST when the next file would pass the limit; a single file larger than the
    limit goes alone (the server will answer 413, which is reported).
    """
    parts: list[list[str]] = [[]]
    size = len(xml) + PART_OVERHEAD
    for name, (_ctype, data) in attachments.items():
        extra = len(data) + PART_OVERHEAD
        if parts[-1] and size + extra > limit:
            parts.append([])
            size = len(xml) + PART_OVERHEAD
        parts[-1].append(name)
        size += extra
    return parts


class OpenRosaClient:
    """One phone: an httpx client with Digest auth against a server base URL. Not shared between threads."""

    def __init__(self, server: str, user: str, password: str, *, timeout: float = 30.0,
                 max_retry_seconds: float = 120.0, backoff: float = 0.25, backoff_cap: float = 8.0,
                 basic: bool = False):
        self.base = server.rstrip("/") + "/"
        auth: httpx.Auth = httpx.BasicAuth(user, password) if basic else httpx.DigestAuth(user, password)
        self.http = httpx.Client(auth=auth, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                 headers={"X-OpenRosa-Version": "1.0", "User-Agent": "carecheck-simulator "
                                          "(like org.odk.collect.android)"})
        self.max_retry_seconds = max_retry_seconds
        self.backoff, self.backoff_cap = backoff, backoff_cap
        self.accept_length: int | None = None   # the last size the server announced
        self._heard: set[str | None] = set()     # submission URLs (per deviceID) already asked with HEAD
        self._rng = random.Random()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OpenRosaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one request, retried ---
    def _request(self, method: str, url: str, outcome: Outcome | None, deadline: float,
                 **kw: object) -> httpx.Response:
        """Send, retrying timeouts, dropped connections and 5xx with back-off until ``deadline``."""
        attempt = 0
        while True:
            if outcome is not None:
                outcome.attempts += 1
            try:
                try:
                    r = self.http.request(method, url, **kw)  # type: ignore[arg-type]
                except httpx.RequestError as exc:  # timeouts, resets, a response that never came, bad gzip
                    raise _Retry(f"{type(exc).__name__}: {exc}") from exc
                if r.status_code >= 500:
                    raise _Retry(f"HTTP {r.status_code} {openrosa_message(r.content)}".strip(),
                                 _retry_after(r.headers.get("retry-after")), r.status_code)
                return r
            except _Retry as retry:
                wait = min(self.backoff_cap, self.backoff * 2 ** attempt) * self._rng.uniform(0.5, 1.0)
                if retry.wait is not None:
                    wait = max(wait, retry.wait)
                if time.monotonic() + wait > deadline:
                    raise Problem(f"Không gửi được sau {attempt + 1} lần thử: {retry.reason}",
                                  f"Gave up after {attempt + 1} attempts: {retry.reason}") from retry
                attempt += 1
                if outcome is not None:
                    outcome.retries += 1
                time.sleep(wait)

    def _url(self, path: str, device_id: str | None = None) -> str:
        url = urljoin(self.base, path)
        return url if device_id is None else str(httpx.URL(url, params={"deviceID": device_id}))

    # --- forms ---
    def form_list(self) -> list[RemoteForm]:
        deadline = time.monotonic() + self.max_retry_seconds
        r = self._request("GET", self._url("formList"), None, deadline)
        if r.status_code != 200:
            why = f"HTTP {r.status_code} {openrosa_message(r.content)}"
            raise Problem(f"Không tải được danh sách biểu mẫu: {why}", f"formList failed: {why}")
        try:
            root = etree.fromstring(r.content, _PARSER)
        except etree.XMLSyntaxError as exc:
            raise Problem("Danh sách biểu mẫu không phải XML.", f"formList is not XML: {exc}") from exc
        forms = []
        for x in root.iter(f"{{{NS_XFORMS_LIST}}}xform"):
            def text(tag: str, x: etree._Element = x) -> str:
                return (x.findtext(f"{{{NS_XFORMS_LIST}}}{tag}") or "").strip()
            forms.append(RemoteForm(text("formID"), text("name"), text("version"), text("hash"),
                                    text("downloadUrl")))
        return forms

    def download(self, form: RemoteForm) -> bytes:
        """The form's XForm bytes, checked against the formList's ``md5:`` hash (Collect does the same)."""
        deadline = time.monotonic() + self.max_retry_seconds
        r = self._request("GET", urljoin(self.base, form.download_url), None, deadline)
        if r.status_code != 200:
            raise Problem(f"Không tải được biểu mẫu {form.form_id}: HTTP {r.status_code}",
                          f"Downloading form {form.form_id} failed: HTTP {r.status_code}")
        got = "md5:" + hashlib.md5(r.content).hexdigest()
        if form.hash and got != form.hash:
            raise Problem(f"Biểu mẫu {form.form_id} tải về bị sai mã băm.",
                          f"Form {form.form_id}: downloaded bytes hash {got}, formList says {form.hash}.")
        return r.content

    # --- submissions ---
    def head(self, device_id: str | None, deadline: float, outcome: Outcome | None = None) -> int:
        """HEAD /submission: 204 and the size the server accepts in one POST."""
        r = self._request("HEAD", self._url("submission", device_id), outcome, deadline)
        if r.status_code != 204:
            raise _Rejected(r.status_code, openrosa_message(r.content) or
                            f"HEAD /submission answered {r.status_code}, not 204")
        value = r.headers.get("x-openrosa-accept-content-length", "")
        self.accept_length = int(value) if value.isdigit() and int(value) > 0 else DEFAULT_ACCEPT_LENGTH
        self._heard.add(device_id)
        return self.accept_length

    def submit(self, filled: Filled, device_id: str | None = None, tag: str = "") -> Outcome:
        """Send one record (split if needed); never raises for the record's own fate."""
        out = Outcome(filled.instance_id, "failed", None, "", tag=tag)
        t0 = time.monotonic()
        deadline = t0 + self.max_retry_seconds
        try:
            self._submit(filled, device_id, out, deadline)
        except _Rejected as rej:
            out.status, out.http_status, out.message = "rejected", rej.status, rej.message
        except Problem as exc:
            out.status, out.message = "failed", exc.message_en
        out.seconds = time.monotonic() - t0
        return out

    def _submit(self, filled: Filled, device_id: str | None, out: Outcome, deadline: float) -> None:
        # Like Collect, HEAD once per submission URL (it carries ?deviceID=) in a session, then POST.
        if self.accept_length is None or device_id not in self._heard:
            self.head(device_id, deadline, out)
        resplit = False
        first: tuple[int, str] | None = None  # the first part's answer says new vs already received
        while True:
            assert self.accept_length is not None
            parts = split_parts(filled.xml, filled.attachments, self.accept_length)
            try:
                for names in parts:
                    files = [("xml_submission_file", ("submission.xml", filled.xml, "text/xml"))]
                    files += [(n, (n, filled.attachments[n][1], filled.attachments[n][0])) for n in names]
                    out.posts += 1
                    r = self._request("POST", self._url("submission", device_id), out, deadline, files=files)
                    msg = openrosa_message(r.content)
                    if r.status_code == 413 and not resplit:
                        raise _Resplit()
                    if r.status_code not in (201, 202):
                        raise _Rejected(r.status_code, msg or (
                            "HTTP 200 is not an OpenRosa success (a captive portal?)" if r.status_code == 200
                            else f"HTTP {r.status_code}"))
                    if first is None:
                        first = (r.status_code, msg)
            except _Resplit:
                # The server's limit may have changed since our HEAD: ask again and split once more.
                resplit = True
                self.head(device_id, deadline, out)
                continue
            assert first is not None
            out.http_status, out.message = first
            out.status = "duplicate" if _is_duplicate(*first) else "accepted"
            return


class _Rejected(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _Resplit(Exception):
    pass


def send_all(server: str, user: str, password: str, records: Iterable[tuple[Filled, str | None, str]], *,
             concurrency: int = 4, on_done: Callable[[Outcome], None] | None = None,
             **client_kw: object) -> list[Outcome]:
    """Send (filled, device_id, tag) records from ``concurrency`` parallel phones; outcomes in input order.

    Like Collect's upload batch, sending stops when a record could not reach the server within its time
    budget: the records not yet tried are reported failed ("not sent") at once, not each after its budget.
    """
    local = threading.local()
    unreachable = threading.Event()
    clients: list[OpenRosaClient] = []
    lock = threading.Lock()

    def phone() -> OpenRosaClient:
        c = getattr(local, "client", None)
        if c is None:
            c = OpenRosaClient(server, user, password, **client_kw)  # type: ignore[arg-type]
            local.client = c
            with lock:
                clients.append(c)
        return c

    def one(rec: tuple[Filled, str | None, str]) -> Outcome:
        filled, dev, tag = rec
        if unreachable.is_set():
            o = Outcome(filled.instance_id, "failed", None, "Not sent: the server could not be reached for "
                        "an earlier record; run again to send the rest.", tag=tag)
        else:
            o = phone().submit(filled, dev, tag)
            if o.status == "failed":
                unreachable.set()
        if on_done is not None:
            on_done(o)
        return o

    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="phone") as pool:
            return list(pool.map(one, records))
    finally:
        for c in clients:
            c.close()
