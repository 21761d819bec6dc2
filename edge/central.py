"""The edge's client for the province's sync server (``/sync/edge/…``), with the edge's own credential.

Used by ``edge init`` (is the secret good, for which area?) and ``edge status`` (what does the province hold,
what would it send; the status report). Replication itself is CouchDB's ``_replicator`` against the same URLs.
Every failure is a Problem with a bilingual text: unreachable, credential refused, or revoked
(``edge_revoked``).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from core.errors import Forbidden, Problem, Unauthorized

EDGE_PATH = "sync/edge"


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class Unreachable(Problem):
    """The province's sync server does not answer (link down, server down)."""

    status = 503
    code = "store_unavailable"


class Province:
    """``/sync/edge`` at the province, as one enrolled edge."""

    def __init__(self, central_url: str, authorization: str, *, timeout: float = 30.0):
        self.url = central_url.rstrip("/")
        self.client = httpx.Client(base_url=f"{self.url}/{EDGE_PATH}", timeout=timeout, trust_env=False,
                                   headers={"Authorization": authorization, "Accept": "application/json"})

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise Unreachable(
                f"Không kết nối được máy chủ đồng bộ của tỉnh {self.url}.",
                f"cannot reach the province's sync server {self.url} ({type(exc).__name__}).",
            ) from None
        if r.status_code < 300:
            return r.json()
        try:
            body = r.json()
        except ValueError:
            body = {}
        reason_en = str(body.get("reason") or f"HTTP {r.status_code}")
        reason_vi = str(body.get("reason_vi") or reason_en)
        if r.status_code == 403 and "revoked" in reason_en:
            raise Forbidden(reason_vi, reason_en, code="edge_revoked")
        if r.status_code == 401:
            raise Unauthorized(
                "Tỉnh không nhận mã đăng ký của nút biên này (sai mã, hoặc tài khoản nút biên đã bị xoá).",
                "The province does not accept this edge's credential (wrong secret, or the edge was "
                "removed).",
            )
        if r.status_code >= 500:
            raise Unreachable(f"Máy chủ tỉnh báo lỗi: {reason_vi}",
                              f"the province's server failed: {reason_en}")
        raise Problem(f"Tỉnh từ chối: {reason_vi}", f"The province refused: {reason_en}")

    def whoami(self) -> dict[str, Any]:
        """``{edge, area, node_name}``: who the province takes this credential for."""
        return dict(self._call("GET", "/"))

    def changes(self, db: str, since: str | None, *, limit: int = 1000) -> tuple[list[dict[str, Any]], str]:
        params: dict[str, Any] = {"style": "all_docs", "limit": limit}
        if since:
            params["since"] = since
        data = self._call("GET", f"/{db}/_changes", params=params)
        return list(data.get("results", [])), str(data.get("last_seq", since or "0"))

    def held(self, hashes: dict[str, str]) -> tuple[set[str], set[str]]:
        """(ids the province does not hold, ids it holds with other content) among ``{id: xml_sha256}``."""
        data = self._call("POST", "/submissions/_held", json=hashes)
        return set(data.get("missing", [])), set(data.get("different", []))

    def put_report(self, doc: dict[str, Any]) -> None:
        self._call("PUT", "/report", json=doc)
