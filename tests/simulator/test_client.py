"""The Collect-like client's rules: what counts as success, what is retried, for how long, and timeouts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from simulator.client import OpenRosaClient, send_all, split_parts
from simulator.fill import Filled, FormTemplate, fill
from simulator.households import generate
from tests.simulator.conftest import PASSWORD, USER, LiveServer
from tests.support.faultproxy import FaultProxy, Faults

OK_XML = (b'<?xml version="1.0"?><OpenRosaResponse xmlns="http://openrosa.org/http/response">'
          b'<message nature="submit_success">Sent</message></OpenRosaResponse>')


class Scripted(ThreadingHTTPServer):
    """A real HTTP server answering POST /submission from a script of (status, headers, body)."""

    script: list[tuple[int, dict[str, str], bytes]]
    posts: list[float]


class _Handler(BaseHTTPRequestHandler):
    server: Scripted

    def log_message(self, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(204)
        self.send_header("X-OpenRosa-Accept-Content-Length", "1000000")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.posts.append(time.monotonic())
        script = self.server.script
        status, headers, body = script.pop(0) if len(script) > 1 else script[0]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def scripted() -> Iterator[Scripted]:
    srv = Scripted(("127.0.0.1", 0), _Handler)
    srv.posts = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _record() -> Filled:
    xml = b"<x id='f'><meta><instanceID>uuid:0f0e0d0c-0b0a-4909-8807-060504030201</instanceID></meta></x>"
    return Filled("uuid:0f0e0d0c-0b0a-4909-8807-060504030201", xml, {})


def _url(srv: Scripted) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_200_is_a_captive_portal_not_a_success(scripted: Scripted) -> None:
    scripted.script = [(200, {}, b"<html>Wi-Fi login</html>")]
    with OpenRosaClient(_url(scripted), "u", "p", basic=True) as c:
        out = c.submit(_record())
    assert out.status == "rejected" and out.http_status == 200 and "captive portal" in out.message
    assert len(scripted.posts) == 1


def test_503_is_retried_after_retry_after(scripted: Scripted) -> None:
    scripted.script = [(503, {"Retry-After": "1"}, b""), (500, {}, b""), (201, {}, OK_XML)]
    with OpenRosaClient(_url(scripted), "u", "p", basic=True, backoff=0.05) as c:
        out = c.submit(_record())
    assert out.status == "accepted" and out.retries == 2 and out.message == "Sent"
    assert scripted.posts[1] - scripted.posts[0] >= 0.95  # the server asked for one second


def test_retrying_stops_after_the_time_budget(scripted: Scripted) -> None:
    scripted.script = [(503, {"Retry-After": "0"}, b"")]
    t0 = time.monotonic()
    with OpenRosaClient(_url(scripted), "u", "p", basic=True, backoff=0.1, max_retry_seconds=1.5) as c:
        out = c.submit(_record())
    assert out.status == "failed" and "503" in out.message
    # It gives up as soon as the next wait would pass the budget, never after it.
    assert 0.5 <= time.monotonic() - t0 < 2.0 and 3 <= len(scripted.posts) < 20


def test_4xx_is_reported_once_not_retried(scripted: Scripted) -> None:
    body = (b'<OpenRosaResponse xmlns="http://openrosa.org/http/response"><message>Form x version 1 is not '
            b'on this server. Update forms.</message></OpenRosaResponse>')
    scripted.script = [(404, {}, body)]
    with OpenRosaClient(_url(scripted), "u", "p", basic=True) as c:
        out = c.submit(_record())
    assert (out.status, out.http_status, out.retries) == ("rejected", 404, 0)
    assert "Update forms" in out.message and len(scripted.posts) == 1


def test_split_parts_follow_collects_rule() -> None:
    xml = b"x" * 1000
    atts = {n: ("image/jpeg", b"j" * size) for n, size in [("a.jpg", 3000), ("b.jpg", 3000), ("c.jpg", 9000)]}
    assert split_parts(xml, atts, 100_000) == [["a.jpg", "b.jpg", "c.jpg"]]
    # 1,000 B of XML + 512 B per part: a and b fit in 9,000 together; c alone is over (sent, and gets a 413).
    assert split_parts(xml, atts, 9000) == [["a.jpg", "b.jpg"], ["c.jpg"]]
    assert split_parts(xml, atts, 6000) == [["a.jpg"], ["b.jpg"], ["c.jpg"]]
    assert split_parts(xml, {}, 10) == [[]]


def test_timeouts_are_resent_and_answered_already_received(live_server: LiveServer,
                                                          template: FormTemplate) -> None:
    """Answers held back longer than the phone waits: the server stored the record, the phone sends again."""
    hhs = generate(40, seed=77, first=date(2026, 7, 1), last=date(2026, 9, 30))
    before = set(live_server.submission_ids())
    records = [(fill(template, h), h.device_id, h.district) for h in hhs]
    faults = Faults(delay=0.3, delay_s=1.5, only_methods=("POST",))
    with FaultProxy(live_server.port, faults, seed=3) as proxy:
        outs = send_all(proxy.url, USER, PASSWORD, records, concurrency=4, timeout=1.0, backoff=0.05)
    assert proxy.counts["delay"] >= 5
    assert all(o.ok for o in outs), [o for o in outs if not o.ok]
    timed_out = [o for o in outs if o.retries]
    # The record was stored before the answer was held back: the resend is "already received" (a phone's very
    # first POST may instead have lost its Digest challenge, and is then simply accepted on the resend).
    assert len(timed_out) >= 5 and sum(o.status == "duplicate" for o in timed_out) >= len(timed_out) - 4
    new = set(live_server.submission_ids()) - before
    assert new == {h.instance_id for h in hhs}


def test_the_proxy_relays_chunked_uploads_and_head(live_server: LiveServer, template: FormTemplate) -> None:
    """The fault proxy itself: HTTP/1.1 framing (HEAD without body, chunked request bodies) passes."""
    import httpx

    h = generate(1, seed=123, first=date(2026, 7, 1), last=date(2026, 7, 31))[0]
    filled = fill(template, h)
    boundary = "carecheck-chunked"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"xml_submission_file\"; "
            f"filename=\"submission.xml\"\r\nContent-Type: text/xml\r\n\r\n").encode() + filled.xml + (
            f"\r\n--{boundary}--\r\n").encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 700):
            yield body[i:i + 700]

    with FaultProxy(live_server.port, Faults(), seed=1) as proxy, httpx.Client(
            auth=httpx.DigestAuth(USER, PASSWORD), timeout=10) as http:
        head = http.head(f"{proxy.url}/submission")
        assert head.status_code == 204 and head.headers["x-openrosa-accept-content-length"]
        r = http.post(f"{proxy.url}/submission", content=chunks(),
                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 201, r.text
        assert r.request.headers["transfer-encoding"] == "chunked"
    assert proxy.counts["forwarded"] >= 3 and proxy.counts["lost"] == 0
    assert live_server.couch.get(live_server.settings.submissions_db, h.instance_id) is not None


def test_an_unreachable_server_stops_the_batch(scripted: Scripted) -> None:
    """After one record used up its time budget, the rest are reported "not sent" without waiting each."""
    scripted.script = [(503, {"Retry-After": "0"}, b"")]
    records = [(Filled(f"uuid:{i:08d}-0000-4000-8000-000000000000", b"<x/>", {}), None, "911")
               for i in range(12)]
    t0 = time.monotonic()
    outs = send_all(_url(scripted), "u", "p", records, concurrency=2, basic=True, backoff=0.05,
                    max_retry_seconds=0.6)
    assert time.monotonic() - t0 < 3.0
    assert [o.instance_id for o in outs] == [r[0].instance_id for r in records]
    assert all(o.status == "failed" for o in outs)
    assert sum("Not sent" in o.message for o in outs) >= 8
