"""`carecheck forms …` through the real CLI: one clear line and exit 1 on a broken form."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.forms import app

from .conftest import SRC

BROKEN = """\
| survey |
| | type | name | label | relevant |
| | integer | children_count | Children | |
| | text | hamlet | Hamlet | ${childrn_count} > 0 |
"""


def carecheck(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("carecheck")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120, check=False)


def test_broken_xlsform_gives_one_line_naming_file_sheet_row(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.md").write_text(BROKEN, encoding="utf-8")
    out = tmp_path / "out"
    r = carecheck("forms", "build", "--src", str(src), "--out", str(out))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("carecheck: broken.md: survey row 3: ")
    assert "'relevant'" in lines[0] and "childrn_count" in lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert not out.exists() or not any(out.iterdir())


def test_build_list_and_admin_units_commands(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SRC / "commune_facility_check.xlsx", src)
    runner = CliRunner()
    r = runner.invoke(app, ["build", "--src", str(src), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "commune_facility_check" in r.output and "md5:" in r.output
    r = runner.invoke(app, ["list", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0 and "commune_facility_check" in r.output
    r = runner.invoke(app, ["admin-units", "--src", str(src)])
    assert r.exit_code == 0 and "commune_facility_check.xlsx: 158 admin-unit choice rows" in r.output
