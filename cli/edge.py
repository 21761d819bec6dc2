"""`carecheck edge init|status` and `carecheck conflicts`: the operator's side of edge sync."""

from __future__ import annotations

import json

import typer

from core.settings import get_settings

edge = typer.Typer(no_args_is_help=True, help="Edge node: local store replicating to the province.")


@edge.command("init")
def init(
    area: str = typer.Option(..., "--area", help="Legacy district (3 digits) or commune (5 digits) code."),
    central: str = typer.Option(..., "--central", help="Province CouchDB URL, e.g. http://province:5984"),
    user: str = typer.Option(..., "--user", help="Province store account (admin)."),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                 help="Its password (asked if not given; never printed)."),
    via: str = typer.Option("", "--via", help="Replicate through this edge's uplink relay (carecheck "
                            "edge uplink), e.g. http://127.0.0.1:5986: compresses what goes up."),
) -> None:
    """Set up this node as an edge for AREA; safe to run again (replaces stale replications)."""
    from edge.replication import init_edge

    settings = get_settings()
    cfg = init_edge(settings, area, central, user, password, via=via)
    typer.echo(f"Đã thiết lập nút biên {cfg.node_name} → {cfg.central_url} (tài khoản {cfg.central_user}).")
    typer.echo(f"Edge {cfg.node_name} set up → {cfg.central_url}; replications are running.")
    if settings.node_name != cfg.node_name:
        typer.echo(f"Đặt CARECHECK_NODE_NAME={cfg.node_name} cho máy chủ đồng bộ trên máy này. / "
                   f"Set CARECHECK_NODE_NAME={cfg.node_name} for this node's sync server.")


@edge.command("status")
def status(
    lang: str = typer.Option("", "--lang", help="vi or en (default: CARECHECK_LANGUAGE)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    every: float = typer.Option(0.0, "--every", help="Check again every N seconds (run as a service: the "
                                "province sees each report within one replication)."),
) -> None:
    """Each replication: state, last success, documents waiting, last error (measured, not assumed)."""
    import time

    from core.errors import Problem
    from edge.status import check, render

    settings = get_settings()
    while True:
        try:
            st = check(settings)
        except Problem as exc:
            if not every:
                raise
            typer.echo(f"carecheck: {exc.text()}", err=True)
        else:
            if as_json:
                typer.echo(json.dumps({"area": st.area, "node_name": st.node_name, **st.as_report()},
                                      indent=None if every else 2, ensure_ascii=False))
            else:
                for line in render(st, lang or settings.language):
                    typer.echo(line)
            if not every and any(r.state == "error" for r in st.replications):
                raise typer.Exit(2)
        if not every:
            return
        time.sleep(every)


@edge.command("sync-now")
def sync_now_cmd(
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for confirmed delivery."),
    lang: str = typer.Option("", "--lang", help="vi or en."),
) -> None:
    """Restart replication now; wait until every submission is confirmed at the province (or say why not)."""
    from edge.status import render, sync_now

    settings = get_settings()
    st = sync_now(settings, timeout)
    for line in render(st, lang or settings.language):
        typer.echo(line)


@edge.command("forms-publish")
def forms_publish() -> None:
    """Province: put every built form version into carecheck_forms, for the edges to pull."""
    from edge.forms import publish
    from edge.replication import local_couch

    done = publish(local_couch(get_settings()), get_settings())
    typer.echo(f"Đã công bố {len(done)} phiên bản biểu mẫu. / Published {len(done)} form versions.")


@edge.command("forms-apply")
def forms_apply() -> None:
    """Edge: write the forms pulled from the province into this node's build directory."""
    from edge.forms import apply
    from edge.replication import local_couch

    done = apply(local_couch(get_settings()), get_settings())
    typer.echo(f"Đã cập nhật {len(done)} phiên bản biểu mẫu. / Updated {len(done)} form versions.")


@edge.command("uplink")
def uplink(
    port: int = typer.Option(5986, "--port", help="Loopback port the edge's replicator connects to."),
) -> None:
    """Run the uplink relay: forwards replication to the province with gzip-compressed request bodies."""
    import uvicorn

    from edge.replication import local_couch, read_config
    from edge.uplink import create_uplink

    cfg = read_config(local_couch(get_settings()))
    if cfg is None:
        from core.errors import ConfigError

        raise ConfigError("Máy này chưa là nút biên: hãy chạy 'carecheck edge init'.",
                          "This node is not an edge yet: run 'carecheck edge init'.")
    uvicorn.run(create_uplink(cfg.central_url), host="127.0.0.1", port=port, log_level="warning",
                access_log=False)


def conflicts(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    lang: str = typer.Option("", "--lang", help="vi or en."),
) -> None:
    """Records edited in two places: every version, and the one that wins (latest form end time)."""
    from edge.conflicts import find_conflicts, render_conflicts
    from edge.replication import local_couch

    settings = get_settings()
    found = find_conflicts(local_couch(settings), settings)
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in found], indent=2, ensure_ascii=False))
        return
    for line in render_conflicts(found, lang or settings.language):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.add_typer(edge, name="edge", help="Edge node: local store replicating to the province.")
    app.command("conflicts")(conflicts)
