"""Enketo's form-build step: each built form.xml also gets ``enketo.json`` (Enketo's HTML form + XML model).

The field web app (fieldapp/) renders forms with enketo-core, which needs the XForm transformed by
enketo-transformer (an XSLT in Node). Doing it here, from the very bytes the OpenRosa server serves, keeps the
web form and the served XForm from drifting: one build, one version directory, both files.

``enketo.json`` is derived from ``form.xml`` only, so adding it to a version directory built earlier changes
nothing a phone has seen (the form's md5 ``hash`` covers form.xml alone).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from core.errors import FormBuildError

ENKETO_FILE = "enketo.json"
TRANSFORM_TIMEOUT_S = 120
_SCRIPT = Path(__file__).with_name("enketo_transform.cjs")


def _node_modules() -> Path | None:
    return next((d / "node_modules" for d in _SCRIPT.parents if (d / "node_modules").is_dir()), None)


def transformer_installed() -> bool:
    """Whether ``npm install`` put enketo-transformer, with its native libxslt built, where Node finds it."""
    nm = _node_modules()
    return (
        nm is not None
        and (nm / "enketo-transformer" / "package.json").is_file()
        and (nm / "libxslt" / "build" / "Release" / "node-libxslt.node").is_file()
    )


def unavailable_reason() -> str | None:
    """Why the Enketo transform cannot run here (None when it can)."""
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not transformer_installed():
        return "enketo-transformer or its native libxslt is not installed (run make install)"
    return None


def transform(xml_paths: list[Path], source: str) -> None:
    """Write ``enketo.json`` beside each ``form.xml`` (one Node process for all), or raise FormBuildError."""
    if not xml_paths:
        return
    node = shutil.which("node") or "node"
    try:
        r = subprocess.run(
            [node, str(_SCRIPT), *map(str, xml_paths)],
            capture_output=True,
            text=True,
            timeout=TRANSFORM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FormBuildError(
            f"{source}: bước Enketo quá {TRANSFORM_TIMEOUT_S} giây.",
            f"{source}: the Enketo transform took longer than {TRANSFORM_TIMEOUT_S} s.",
        ) from exc
    if r.returncode != 0:
        detail = " ".join((r.stderr or r.stdout).split())[:300] or f"exit code {r.returncode}"
        raise FormBuildError(
            f"{source}: Enketo không chuyển được biểu mẫu cho ứng dụng web: {detail}",
            f"{source}: Enketo could not transform the form for the web app: {detail}",
        )
