"""`carecheck demo`: the main job, end to end, on embedded defaults."""

from __future__ import annotations

from rich.console import Console

from core.settings import Settings


def run_demo(settings: Settings) -> None:
    console = Console()
    from forms.build import build_all
    from forms.cli import print_built

    console.rule("[bold]1. Biên dịch biểu mẫu / Build the XLSForms")
    built = build_all(settings.forms_src_dir, settings.effective_forms_build_dir)
    print_built(built, console)
