"""Read the build output (docs/contracts.md §2): which forms and versions exist, their bytes and hashes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError


@dataclass(frozen=True)
class Media:
    filename: str
    hash: str  # "md5:" + md5 of the file's bytes
    path: Path


@dataclass(frozen=True)
class BuiltForm:
    form_id: str
    version: str
    title: str
    hash: str  # "md5:" + md5 of the exact bytes of form.xml
    languages: list[str]
    n_questions: int
    media: list[Media]
    xml_path: Path
    built_at: str = ""
    source_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def dir(self) -> Path:
        return self.xml_path.parent

    def xml_bytes(self) -> bytes:
        return self.xml_path.read_bytes()

    def media_file(self, filename: str) -> Media | None:
        return next((m for m in self.media if m.filename == filename), None)


def load_built(version_dir: Path) -> BuiltForm:
    """A BuiltForm from ``<build>/<form_id>/<version>/form.json``."""
    meta_path = version_dir / "form.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return BuiltForm(
            form_id=meta["form_id"],
            version=meta["version"],
            title=meta["title"],
            hash=meta["hash"],
            languages=list(meta["languages"]),
            n_questions=int(meta["n_questions"]),
            media=[
                Media(m["filename"], m["hash"], version_dir / "media" / m["filename"]) for m in meta["media"]
            ],
            xml_path=version_dir / "form.xml",
            built_at=meta.get("built_at", ""),
            source_sha256=meta.get("source_sha256", ""),
            extra={k: v for k, v in meta.items() if k not in _KNOWN},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"Bản biên dịch biểu mẫu hỏng: {meta_path} ({exc}). Hãy chạy 'carecheck forms build'.",
            f"Broken form build: {meta_path} ({exc}). Run 'carecheck forms build'.",
        ) from exc


_KNOWN = {
    "form_id",
    "version",
    "title",
    "hash",
    "languages",
    "n_questions",
    "media",
    "built_at",
    "source_sha256",
}


class Catalog:
    """The forms in a build directory. Reads the disk on every call, so a rebuild is seen at once."""

    def __init__(self, build_dir: Path | str):
        self.build_dir = Path(build_dir)

    def form_ids(self) -> list[str]:
        if not self.build_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.build_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "current").is_file()
        )

    def current_version(self, form_id: str) -> str | None:
        try:
            return (self.build_dir / form_id / "current").read_text(encoding="utf-8").strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def versions(self, form_id: str) -> list[str]:
        d = self.build_dir / form_id
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.is_dir() and (p / "form.json").is_file())

    def current(self) -> list[BuiltForm]:
        out = []
        for form_id in self.form_ids():
            built = self.get(form_id)
            if built is not None:
                out.append(built)
        return out

    def get(self, form_id: str, version: str | None = None) -> BuiltForm | None:
        """The given version of a form (the current one when ``version`` is None), or None if not built."""
        if not form_id or "/" in form_id or form_id.startswith("."):
            return None
        if version is None:
            version = self.current_version(form_id)
            if version is None:
                return None
        if "/" in version or version.startswith("."):
            return None
        d = self.build_dir / form_id / version
        if not (d / "form.json").is_file():
            return None
        return load_built(d)

    def all(self) -> list[BuiltForm]:
        """Every built version of every form (old versions stay accepted for submissions)."""
        return [b for f in self.form_ids() for v in self.versions(f) if (b := self.get(f, v)) is not None]
