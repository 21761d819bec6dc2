"""Every usage mistake is one bilingual line with exit code 2, a problem one line with exit code 1, and a
bare group command prints its help and exits 0 — under the lowest and the highest typer pyproject.toml allows.

The highest is the one constraints.txt pins (``make lock`` takes the newest the bounds allow) and the venv
has; the lowest is installed into a throw-away directory put first on PYTHONPATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator

import pytest

from core.settings import ROOT

pytestmark = pytest.mark.slow

CARECHECK = [sys.executable, "-c", "from cli.main import main; main()"]
VIETNAMESE = re.compile(r"[àáảãạăắằẳẵặâấầẩẫậđèéẻẽẹêếềểễệìíỉĩịòóỏõọôốồổỗộơớờởỡợùúủũụưứừửữựỳýỷỹỵ]")

USAGE_MISTAKES = [  # exit code 2
    ["nosuch"],
    ["--nope"],
    ["serve", "--port", "notaport"],
    ["serve", "--port"],
    ["serve", "--bogus"],
    ["serve", "extra-argument"],
    ["indicators", "nosuch"],
    ["indicators", "show"],
    ["indicators", "list", "--level"],
    ["user", "add"],
    ["user", "nosuch"],
    ["worker", "--concurrency", "0"],
    ["worker", "--concurrency", "many"],
    ["demo", "--households", "0"],
    ["demo", "--today", "2026-13-45"],
    ["demo", "--today", "yesterday"],
    ["edge", "nosuch"],
    ["registry", "nosuch"],
    ["local", "nosuch"],
    ["forms", "nosuch"],
    ["report", "--bogus"],
    ["status", "--bogus"],
]
PROBLEMS = [  # exit code 1: well-formed, but something a person must fix
    ["indicators", "show", "no_such_indicator"],
]


def _groups() -> list[list[str]]:
    """Every group command of the CLI (the root included), found by walking it."""
    import typer.main

    from cli.main import app

    out: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        commands = getattr(cmd, "commands", None)
        if commands is None:
            return
        if not getattr(cmd, "invoke_without_command", False):  # `conflicts` lists on its own: a command
            out.append(path)
        for name, sub in commands.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def _typer_bounds() -> tuple[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if re.match(r"typer\b", d))
    lowest = re.search(r">=\s*([\d.]+)", spec)
    pinned = re.search(r"^typer==([\d.]+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert lowest and pinned, (spec, "constraints.txt pins typer")
    return lowest.group(1), pinned.group(1)


@pytest.fixture(scope="module", params=["lowest", "highest"])
def typer_env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    import importlib.metadata

    lowest, highest = _typer_bounds()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECHECK_")}
    env["CARECHECK_VAR_DIR"] = str(tmp_path_factory.mktemp("var"))
    env["COLUMNS"] = "100"
    if request.param == "highest":
        assert importlib.metadata.version("typer") == highest, "the venv has constraints.txt's typer"
        env["PYTHONPATH"] = str(ROOT)
        yield env
        return
    target = tmp_path_factory.mktemp(f"typer-{lowest}")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
         "--target", str(target), f"typer=={lowest}"],
        capture_output=True, text=True, timeout=300,
    )
    if r.returncode != 0:
        pytest.fail(f"cannot install typer=={lowest}: {r.stderr[-1000:]}")
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(ROOT)])
    probe = subprocess.run([sys.executable, "-c", "import typer; print(typer.__version__)"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == lowest, probe.stderr
    yield env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CARECHECK, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_usage_mistakes_are_one_bilingual_line_and_exit_2(typer_env: dict[str, str]) -> None:
    assert len(USAGE_MISTAKES) >= 15
    for args in USAGE_MISTAKES:
        r = _run(args, typer_env)
        where = f"carecheck {' '.join(args)} → {r.returncode}\n{r.stdout}{r.stderr}"
        assert r.returncode == 2, where
        assert r.stdout == "" and r.stderr.count("\n") == 1, where
        assert " / " in r.stderr and VIETNAMESE.search(r.stderr), where
        assert "Traceback" not in r.stderr, where


def test_problems_are_one_bilingual_line_and_exit_1(typer_env: dict[str, str]) -> None:
    for args in PROBLEMS:
        r = _run(args, typer_env)
        where = f"carecheck {' '.join(args)} → {r.returncode}\n{r.stdout}{r.stderr}"
        assert r.returncode == 1, where
        assert r.stdout == "" and r.stderr.count("\n") == 1 and " / " in r.stderr, where


def test_bare_group_commands_print_help_and_exit_0(typer_env: dict[str, str]) -> None:
    groups = _groups()
    assert len(groups) >= 6, groups
    for args in groups:
        r = _run(args, typer_env)
        where = f"carecheck {' '.join(args)} → {r.returncode}\n{r.stdout[-500:]}{r.stderr}"
        assert r.returncode == 0 and "Usage" in r.stdout and r.stderr == "", where
