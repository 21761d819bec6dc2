"""`carecheck forms …`: build the XLSForms, list what is built, refresh the admin-unit choices."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from core.settings import get_settings
from forms.catalog import BuiltForm, Catalog

app = typer.Typer(no_args_is_help=True, add_completion=False)

SrcOpt = typer.Option(None, "--src", help="XLSForm source directory (default: CARECHECK_FORMS_SRC_DIR).")
OutOpt = typer.Option(
    None, "--out", help="Build output directory (default: CARECHECK_FORMS_BUILD_DIR or var/forms)."
)


def print_built(built: list[BuiltForm], console: Console, *, title: str | None = None) -> None:
    """A table of built forms: id, version, hash, languages, number of questions, media."""
    table = Table(title=title or "Biểu mẫu đã biên dịch / Built forms", show_lines=False)
    for col in ("form_id", "version", "hash", "languages", "questions", "media"):
        table.add_column(
            col,
            justify="right" if col == "questions" else "left",
            overflow="fold",
            no_wrap=col in ("form_id", "version"),
        )
    for b in built:
        table.add_row(
            b.form_id,
            b.version,
            b.hash,
            ", ".join(_lang_code(lang) for lang in b.languages),
            str(b.n_questions),
            ", ".join(m.filename for m in b.media) or "—",
        )
    # A non-terminal console (a log, a pipe) is 80 columns wide, too narrow for a full md5 hash: widen it.
    if console.width < 110 and not console.is_terminal:
        console = Console(file=console.file, width=110, no_color=console.no_color)
    console.print(table)


def _lang_code(language: str) -> str:
    """'Tiếng Việt (vi)' → 'vi' (XLSForm language names end with the code in brackets)."""
    if language.endswith(")") and "(" in language:
        return language.rsplit("(", 1)[1][:-1]
    return language


@app.command("build")
def build(src: Path | None = SrcOpt, out: Path | None = OutOpt) -> None:
    """Compile every XLSForm, check it with ODK Validate and publish it (all or nothing)."""
    from forms.build import build_all

    s = get_settings()
    src_dir = src or s.forms_src_dir
    out_dir = out or s.effective_forms_build_dir
    built = build_all(src_dir, out_dir)
    print_built(built, Console())
    for b in built:
        for lang, r in (b.extra.get("translations") or {}).items():
            typer.echo(translation_line(b.form_id, lang, r))
    from forms.enketo import unavailable_reason

    if why := unavailable_reason():
        typer.echo(
            f"Ứng dụng web: chưa chuẩn bị biểu mẫu Enketo ({why}). / "
            f"Web app: Enketo forms not prepared ({why})."
        )
    typer.echo(f"Build output: {out_dir}")


def translation_line(form_id: str, lang: str, r: dict[str, object]) -> str:
    """One line per form and language: translated / untranslated / stale, and whether it is still a draft."""
    untranslated = r.get("untranslated") or []
    stale = r.get("stale") or []
    assert isinstance(untranslated, list) and isinstance(stale, list)
    line = f"{form_id} [{lang}]: {r.get('translated')} texts translated"
    if untranslated:
        line += f", {len(untranslated)} untranslated (shown in Vietnamese: {', '.join(untranslated[:5])}"
        line += ", …)" if len(untranslated) > 5 else ")"
    if stale:
        line += f", {len(stale)} stale (source changed: {', '.join(stale[:5])})"
    if r.get("status") == "draft":
        line += f"; DRAFT — {r.get('draft')} texts await review by a native speaker"
    return line


@app.command("list")
def list_(
    out: Path | None = OutOpt,
    all_versions: bool = typer.Option(False, "--all", help="Every built version, not only the current."),
) -> None:
    """List the built forms (current versions, or all with --all)."""
    out_dir = out or get_settings().effective_forms_build_dir
    catalog = Catalog(out_dir)
    built = catalog.all() if all_versions else catalog.current()
    if not built:
        typer.echo(
            f"Chưa có biểu mẫu nào trong {out_dir}; hãy chạy 'carecheck forms build'. / "
            f"No forms built in {out_dir}; run 'carecheck forms build'."
        )
        return
    print_built(built, Console())


@app.command("admin-units")
def admin_units(src: Path | None = SrcOpt) -> None:
    """Rewrite the district/commune choice rows of every XLSForm from the official register."""
    from forms.admin_units import update_admin_units
    from forms.build import source_files

    src_dir = src or get_settings().forms_src_dir
    for path in source_files(src_dir):
        if path.suffix.lower() != ".xlsx":
            continue
        n = update_admin_units(path)
        typer.echo(f"{path.name}: {n} admin-unit choice rows written")


@app.command("translations")
def translations(
    lang: str = typer.Option("km", "--lang", help="Language code of the sheet (e.g. km)."),
    src: Path | None = SrcOpt,
) -> None:
    """Write or refresh each form's translation sheet translations/<form>.<lang>.csv (translations kept)."""
    from forms.build import source_files
    from forms.translations import write_sheet

    src_dir = src or get_settings().forms_src_dir
    for path in source_files(src_dir):
        if path.suffix.lower() != ".xlsx":
            continue
        sheet, n, missing = write_sheet(path, lang)
        typer.echo(f"{sheet}: {n} texts, {missing} without a translation")
