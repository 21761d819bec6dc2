"""The HTML report in a real browser (Debian's headless Chromium): charts and tables render; screenshot."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from lxml import html as lxml_html

from tests.reports.conftest import ReportDB

# Without the background-networking flags Chromium tries to reach the internet at start (docs/design.md §6).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    """The chromium binary; installed from Debian when missing (CI's .ci/run installs it too)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is not installed and `apt-get install -y chromium` did not provide it")
    return found


def run_chromium(*args: str) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, timeout=120
        )


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def test_report_renders_in_chromium(report_db: ReportDB, tmp_path: Path, artifacts: Path) -> None:
    page = tmp_path / "report.html"
    report_db.report("--level", "district", "--area", "900", "--period", "2026Q4", "--out", str(page))
    source = lxml_html.fromstring(page.read_text(encoding="utf-8"))
    n_svg = len(source.xpath("//*[local-name()='svg']"))

    dom = run_chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-2000:]
    rendered = lxml_html.fromstring(dom.stdout.decode("utf-8"))
    svgs = rendered.xpath("//*[local-name()='svg' and contains(@class, 'chart')]")
    assert len(svgs) == n_svg and n_svg >= 10, (len(svgs), n_svg)
    assert rendered.xpath("//*[local-name()='rect' and contains(@class, 'bar')]"), "bars drawn"
    assert rendered.xpath("//*[local-name()='polyline']"), "trend lines drawn"
    assert rendered.xpath("//*[local-name()='line' and @class='target-line']"), "target lines drawn"
    for table in ("summary", "disagg", "lag", "flags"):
        assert rendered.xpath(f"//table[contains(@class, '{table}')]//tbody/tr"), table
    for section in ("summary", "trend", "ranking", "disaggregation", "quality"):
        assert rendered.xpath(f"//section[@id='{section}']"), section

    shot = artifacts / "report.png"
    shot.unlink(missing_ok=True)
    res = run_chromium(f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri())
    assert res.returncode == 0 and shot.exists(), res.stderr.decode(errors="replace")[-2000:]
    assert png_size(shot) == (1280, 4000)
    assert shot.stat().st_size > 100_000  # a drawn page, not a blank one

    # print to PDF (A4 page breaks between sections): Chromium lays it out on several pages
    pdf = tmp_path / "report.pdf"
    res = run_chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.as_uri())
    assert res.returncode == 0 and pdf.exists()
    pages = pdf.read_bytes().count(b"/Type /Page") - pdf.read_bytes().count(b"/Type /Pages")
    assert pages >= 5, pages
    shutil.copy(pdf, artifacts / "report.pdf")
