"""The edge's uplink: a local HTTP relay that gzips what the replicator sends up to the province.

CouchDB replication sends documents up as plain JSON (`_bulk_docs`, `_revs_diff`, checkpoints); the answers
come back gzip-compressed already when the client accepts it. Over a 100 kbit/s island link the request bodies
are the cost, so the edge's replicator talks to this relay on loopback (``carecheck edge init --via``) and the
relay forwards every request to the province with its body gzip-compressed (``Content-Encoding: gzip``, which
CouchDB and pouchdb-server both accept) and passes the answer through untouched, still compressed. Nothing is
stored here: a cut link fails the request and the replicator retries from its checkpoint as before.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

MIN_COMPRESS = 256          # bytes; smaller bodies are not worth the gzip header
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}


def create_uplink(upstream: str, *, timeout: float = 120.0, level: int = 9) -> Starlette:
    """An ASGI app forwarding everything to ``upstream`` (the province store), request bodies compressed."""
    upstream = upstream.rstrip("/")
    client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=20.0), trust_env=False)

    async def forward(request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        if len(body) >= MIN_COMPRESS and "content-encoding" not in {k.lower() for k in headers}:
            body = gzip.compress(body, compresslevel=level)
            headers["content-encoding"] = "gzip"
        # The raw path: a decoded one would turn an id's %2F into a path separator.
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        query = f"?{request.url.query}" if request.url.query else ""
        url = upstream + raw_path.decode("latin-1") + query
        try:
            req = client.build_request(request.method, url, content=body, headers=headers)
            resp = await client.send(req, stream=True)
        except httpx.HTTPError as exc:
            err = json.dumps({"error": "bad_gateway", "reason": f"uplink: {type(exc).__name__}"})
            return Response(err, status_code=502, media_type="application/json")
        out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}

        async def passthrough() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.aiter_raw():
                    yield chunk
            except httpx.HTTPError:
                return  # the link dropped mid-answer: the replicator sees a short body and retries

        return StreamingResponse(passthrough(), status_code=resp.status_code, headers=out_headers,
                                 background=BackgroundTask(resp.aclose))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "COPY"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)
