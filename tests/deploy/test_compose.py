"""docker-compose.yml: valid against the Compose Specification, and every command it runs exists.

The schema is the Compose Specification's own JSON schema as vendored by check-jsonschema (PyPI,
``--builtin-schema vendor.compose-spec``). Commands in the carecheck image are checked against our CLI (each
``carecheck`` sub-command and option must parse) and against what the Dockerfile installs (the base image's
``python``, the console scripts of our package and its dependencies).
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import ROOT

COMPOSE = ROOT / "docker-compose.yml"
OUR_IMAGE = "carecheck:"
# What the pinned third-party images ship (their healthchecks use only these).
IMAGE_BINARIES = {
    "couchdb:": {"bash", "/bin/sh", "tini"},
    "postgres:": {"pg_isready"},
    "redis:": {"redis-server", "redis-cli"},
    "caddy:": {"wget", "caddy"},
}
ONE_SHOT = {"migrate"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # resolves the <<: merge keys
    assert isinstance(data, dict)
    return data


def test_valid_against_the_compose_specification() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _argv(cmd: Any) -> list[str]:
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _check_carecheck(argv: list[str]) -> None:
    """The sub-command exists and its options and arguments parse (nothing runs)."""
    import typer.main

    from cli.main import app

    cmd: Any = typer.main.get_command(app)
    name, args = "carecheck", list(argv[1:])
    while hasattr(cmd, "commands"):
        assert args and not args[0].startswith("-"), f"{' '.join(argv)} names a group, not a command"
        sub = cmd.get_command(cmd.make_context(name, [], resilient_parsing=True), args[0])
        assert sub is not None, f"carecheck has no command {' '.join(argv[1:])!r}"
        name, cmd, args = args[0], sub, args[1:]
    cmd.make_context(name, args)  # raises a usage error for an unknown option or a bad value


def _console_scripts() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}


def _check_in_our_image(argv: list[str]) -> None:
    exe = argv[0]
    if exe == "carecheck":
        _check_carecheck(argv)
    elif exe in ("python", "python3"):
        pass  # the base image's interpreter
    else:
        assert exe in _console_scripts(), f"{exe} is not installed in the carecheck image"


def _healthcheck_argv(test: list[str]) -> list[str]:
    kind, *rest = test
    if kind == "CMD-SHELL":
        return shlex.split(rest[0].replace("$$", "$"))
    assert kind == "CMD", test
    return rest


def test_every_command_exists(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        image: str = svc["image"]
        commands = []
        for key in ("entrypoint", "command"):
            if key in svc:
                commands.append(_argv(svc[key]))
        if "healthcheck" in svc:
            commands.append(_healthcheck_argv(svc["healthcheck"]["test"]))
        for argv in commands:
            if image.startswith(OUR_IMAGE):
                _check_in_our_image(argv)
            else:
                known = next(v for k, v in IMAGE_BINARIES.items() if image.startswith(k))
                assert argv[0] in known, f"{name}: {argv[0]} is not in {image}"


def test_carecheck_check_detects_a_missing_command() -> None:
    with pytest.raises(Exception):  # noqa: B017 - click's UsageError or our assertion, either is a failure
        _check_carecheck(["carecheck", "no-such-command"])
    with pytest.raises(Exception):  # noqa: B017
        _check_carecheck(["carecheck", "serve", "--no-such-option"])


def test_production_rules(compose: dict[str, Any]) -> None:
    services = compose["services"]
    proxy_ip = services["proxy"]["networks"]["front"]["ipv4_address"]
    for name, svc in services.items():
        image = svc["image"]
        # pinned: an exact release (x.y.z; PostgreSQL's are x.y) or a digest, never a floating tag
        version = r"\d+\.\d+" if image.startswith("postgres:") else r"\d+\.\d+\.\d+"
        exact = rf":{version}(-[a-z0-9]+)?$"
        assert re.search(exact + r"|@sha256:[0-9a-f]{64}$", image), f"{name}: {image} is not pinned"
        if name in ONE_SHOT:
            assert svc["restart"] == "no"
        else:
            assert "healthcheck" in svc, f"{name} has no healthcheck"
        if image.startswith(OUR_IMAGE) and name not in ONE_SHOT:
            assert svc["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
            # secrets come from files, never from the environment itself
            env = svc["environment"]
            for secret in ("COUCHDB_PASSWORD", "DATABASE_PASSWORD", "PSEUDONYM_KEY"):
                assert f"CARECHECK_{secret}" not in env and f"CARECHECK_{secret}_FILE" in env
            assert env["CARECHECK_PUBLIC_URL"].startswith("${CARECHECK_PUBLIC_URL:?")
    serve = _argv(services["sync-server"]["command"])
    assert "--proxy-headers" in serve and serve[serve.index("--forwarded-allow-ips") + 1] == proxy_ip
    assert _argv(services["migrate"]["command"]) == ["carecheck", "db", "upgrade"]
    ini = (ROOT / "deploy" / "couchdb" / "local.ini").read_text()
    assert re.search(r"^\[couchdb\][^\[]*^single_node = true$", ini, re.M | re.S)


def test_image_runs_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert base and re.search(r":\d+\.\d+\.\d+", base.group(1)), "the base image is pinned"
    assert "-c constraints.txt" in dockerfile
    assert Path(ROOT / "constraints.txt").exists()


def test_dockerfile_carecheck_commands_exist() -> None:
    """The Dockerfile's own `carecheck …` steps (form build, default CMD) are commands we have."""
    import json

    dockerfile = (ROOT / "Dockerfile").read_text()
    found = [shlex.split(m) for m in re.findall(r"^RUN\s+(carecheck\s[^\n\\&]+)", dockerfile, re.M)]
    found += [json.loads(m) for m in re.findall(r"^CMD\s+(\[.*\])\s*$", dockerfile, re.M)]
    assert len(found) >= 2, found
    for argv in found:
        _check_in_our_image(argv)


def test_caddyfile_is_valid() -> None:
    """deploy/Caddyfile parses and adapts (Debian's caddy, installed by scripts/system-deps.sh; the image's is
    newer and reads the same directives)."""
    import shutil

    caddy = shutil.which("caddy")
    assert caddy, "caddy is not installed: run scripts/system-deps.sh"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "CARECHECK_PUBLIC_URL": "https://carecheck.example.gov.vn"}
    config = str(ROOT / "deploy" / "Caddyfile")
    r = subprocess.run([caddy, "adapt", "--config", config, "--adapter", "caddyfile"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert '"carecheck.example.gov.vn"' in r.stdout and '"dial":"sync-server:8000"' in r.stdout


def test_image_builds_the_web_app_and_the_enketo_transform_as_make_does() -> None:
    """The image's Node stage runs the Makefile's npm steps (the native XSLT rebuilds, in order, and the web
    app's build), and the runtime stage gets Node, node_modules and the built app: /app and the form build's
    Enketo step work in production as they do after `make install`."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    rebuilds = re.findall(r"npm rebuild (\S+)", makefile)
    assert rebuilds and re.findall(r"npm rebuild (\S+)", dockerfile) == rebuilds
    assert "node fieldapp/build.mjs" in makefile and "node fieldapp/build.mjs" in dockerfile
    stages = re.split(r"^FROM\s", dockerfile, flags=re.M)[1:]
    assert len(stages) == 2 and stages[0].split()[2] == "node", "a Node build stage, then the runtime"
    runtime = stages[1]
    for copied in ("/usr/local/bin/node", "/app/node_modules", "/app/fieldapp/static"):
        assert re.search(rf"^COPY --from=node {re.escape(copied)}\s", runtime, re.M), copied
    assert "fieldapp/static" in (ROOT / ".dockerignore").read_text().split()
