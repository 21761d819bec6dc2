"""What a request handler needs: the server context (settings, store, accounts, forms) as dependencies."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from core.audit import ensure_audit
from core.couch import Couch
from core.errors import NotFound, Problem
from core.settings import Settings
from core.stores import ensure_store
from core.throttle import Throttle
from forms.catalog import BuiltForm, Catalog
from forms.fields import repeat_names
from sync_server import openrosa
from sync_server.auth import Account, Accounts, NonceCounts, current_account, load_secret
from sync_server.devices import Devices
from sync_server.store import Submissions

log = logging.getLogger("carecheck.sync")
CATALOG_TTL = 5.0


@dataclass
class FormInfo:
    """A built form plus what the submission path derives from its XML (cached with it)."""

    built: BuiltForm
    binary_paths: frozenset[tuple[str, ...]]
    repeats: frozenset[str]


@dataclass
class FormCache:
    """The catalog, short TTL: a rebuild is seen within seconds, a burst of submissions reads no disk."""

    catalog: Catalog
    _forms: dict[tuple[str, str | None], tuple[float, FormInfo | None]] = field(default_factory=dict)
    _current: tuple[float, list[BuiltForm]] | None = None

    def current(self) -> list[BuiltForm]:
        now = time.monotonic()
        if self._current is None or now - self._current[0] > CATALOG_TTL:
            self._current = (now, self.catalog.current())
        return self._current[1]

    def cached(self, form_id: str, version: str | None = None) -> bool:
        """Whether :meth:`get` answers a known form from memory now (no disk read)."""
        hit = self._forms.get((form_id, version))
        return hit is not None and hit[1] is not None and time.monotonic() - hit[0] < CATALOG_TTL

    def get(self, form_id: str, version: str | None = None) -> FormInfo | None:
        now = time.monotonic()
        hit = self._forms.get((form_id, version))
        if hit is not None and now - hit[0] < CATALOG_TTL:
            return hit[1]
        built = self.catalog.get(form_id, version)
        info = None
        if built is not None:
            xml = built.xml_bytes()
            info = FormInfo(built, openrosa.binary_paths(xml), frozenset(repeat_names(xml)))
        if len(self._forms) > 1000:
            self._forms.clear()
        self._forms[(form_id, version)] = (now, info)
        return info

    def require(self, form_id: str, version: str | None) -> FormInfo:
        """THE form rule of intake: a record is taken only for a form and version this server has.

        Older versions stay in the catalog (a phone may still send a draft of one), so this refuses only a
        form the server never had or a version an operator removed. Raises 404 ``form_unknown``.
        """
        form = self.get(form_id, version or None)
        if form is not None:
            return form
        known = self.get(form_id)
        if known is None:
            raise NotFound(
                f"Máy chủ không có biểu mẫu '{form_id}'. "
                "Hãy cập nhật biểu mẫu (Tải biểu mẫu trống) rồi gửi lại.",
                f"Form '{form_id}' is not on this server. Update forms on the phone and send again.",
                code="form_unknown",
            )
        raise NotFound(
            f"Phiên bản biểu mẫu đã cũ — hãy cập nhật biểu mẫu: '{form_id}' phiên bản {version} "
            f"không có trên máy chủ (hiện tại: {known.built.version}).",
            f"Form '{form_id}' version {version} is not on this server (current: "
            f"{known.built.version}). Update forms on the phone and send again.",
            code="form_unknown",
        )


class ServerContext:
    """One per app: settings, the CouchDB connection and the services built on it.

    The store is set up lazily: if CouchDB is down at start-up the server still starts, answers 503 meanwhile,
    and sets the store up on the first request after it is back.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.couch = Couch.from_settings(settings, timeout=30.0)
        # requests re-reads proxy variables from the environment on every call (~1 ms each on the hot path);
        # the store is addressed directly.
        self.couch.session.trust_env = False
        # pouchdb-server gzips every answer for clients that accept it; our answers are a few dozen bytes.
        self.couch.session.headers["Accept-Encoding"] = "identity"
        self.secret = load_secret(settings)
        self.accounts = Accounts(self.couch, settings)
        self.throttle = Throttle(self.couch, settings)  # failed logins per account and address
        self.nonces = NonceCounts()  # Digest (nonce, nc) pairs used in this process
        self.submissions = Submissions(self.couch, settings)
        self.devices = Devices(self.couch, settings, self.submissions)
        self.forms = FormCache(Catalog(settings.effective_forms_build_dir))
        self._ready = False
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._ready

    def ensure_ready(self) -> None:
        """Create databases and design doc once; raises StoreUnavailable while the store is down."""
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                ensure_store(self.couch, self.settings)
                ensure_audit(self.couch, self.settings)
                self.throttle.ensure()
                self._ready = True

    def try_ready(self) -> None:
        try:
            self.ensure_ready()
        except Problem as exc:
            log.warning("store not ready at start-up (will retry on the next request): %s", exc.message_en)

    def base_url(self, request: Request) -> str:
        """The URL phones use for this server (settings.public_url, else what the request came in on)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")


async def get_ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


async def ready_ctx(request: Request) -> ServerContext:
    """The context, once the store is set up (set-up runs in the thread pool, once)."""
    ctx: ServerContext = request.app.state.ctx
    if not ctx.ready:
        await run_in_threadpool(ctx.ensure_ready)
    return ctx


Ctx = Annotated[ServerContext, Depends(get_ctx)]
ReadyCtx = Annotated[ServerContext, Depends(ready_ctx)]
CurrentAccount = Annotated[Account, Depends(current_account)]


def device_id(request: Request) -> str | None:
    """Collect appends ?deviceID=… to every OpenRosa URL; Enketo sends none."""
    value: Any = request.query_params.get("deviceID")
    return str(value) if value else None
