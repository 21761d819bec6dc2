"""`carecheck edge enroll|revoke|list` (province), `edge init|status|sync-now`, `conflicts [choose]`."""

from __future__ import annotations

import json

import typer

from core.settings import Settings, get_settings

edge = typer.Typer(no_args_is_help=True, help="Edge node: local store replicating to the province.")


@edge.command("enroll")
def enroll(
    area: str = typer.Option(..., "--area", help="Legacy district (3 digits) or commune (5 digits) code."),
) -> None:
    """Province: enrol an edge node for AREA; prints its secret ONCE (stored here only as a hash)."""
    from core.couch import Couch
    from sync_server.edges import enroll as do_enroll

    settings = get_settings()
    e = do_enroll(Couch.from_settings(settings), settings, area)
    typer.echo(f"Đã đăng ký nút biên {e.edge_id} cho vùng {e.area}. Mã đăng ký (chỉ hiện một lần, hãy dán "
               f"vào nút biên: carecheck edge init --area {e.area} --central <URL máy chủ tỉnh> "
               "--enroll-secret …):")
    typer.echo(f"Edge {e.edge_id} enrolled for area {e.area}. Its secret (shown once only; paste it on the "
               "edge with 'carecheck edge init --enroll-secret'):")
    typer.echo(e.token)


@edge.command("revoke")
def revoke(
    area: str = typer.Option("", "--area", help="Revoke every active edge of this area."),
    edge_id: str = typer.Option("", "--id", help="Revoke this edge (edge-<area>-<hex>)."),
) -> None:
    """Province: revoke an edge's credential; its pushes and pulls are refused from the next request."""
    from core.couch import Couch
    from sync_server.edges import revoke as do_revoke

    settings = get_settings()
    done = do_revoke(Couch.from_settings(settings), settings, area=area or None, edge_id=edge_id or None)
    typer.echo(f"Đã thu hồi: {', '.join(done)}. / Revoked: {', '.join(done)}.")


@edge.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Province: every enrolled edge node (active and revoked)."""
    from core.couch import Couch
    from sync_server.edges import list_edges

    settings = get_settings()
    rows = list_edges(Couch.from_settings(settings), settings)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        state = "hoạt động / active" if r["active"] else f"đã thu hồi / revoked {r['revoked_at']}"
        typer.echo(f"{r['name']}  {r['area']}  {r['created_at']}  {state}")


@edge.command("init")
def init(
    area: str = typer.Option(..., "--area", help="Legacy district (3 digits) or commune (5 digits) code."),
    central: str = typer.Option(..., "--central", help="The province's sync server URL (what phones use), "
                                "e.g. https://carecheck.province.vn"),
    enroll_secret: str = typer.Option("", "--enroll-secret", envvar="CARECHECK_EDGE_ENROLL_SECRET",
                                      help="What 'carecheck edge enroll' printed at the province (needed the "
                                      "first time; never printed)."),
    via: str = typer.Option("", "--via", help="Replicate through this edge's uplink relay (carecheck "
                            "edge uplink), e.g. http://127.0.0.1:5986: compresses what goes up."),
) -> None:
    """Set up this node as an edge for AREA; safe to run again (replaces stale replications).

    Upgrading an edge set up with the province's admin account: run this with --enroll-secret; the old
    replications and their admin credentials are removed from this node.
    """
    from edge.replication import init_edge

    settings = get_settings()
    cfg = init_edge(settings, area, central, enroll_secret or None, via=via)
    typer.echo(f"Đã thiết lập nút biên {cfg.node_name} ({cfg.edge_id}) → {cfg.central_url}.")
    typer.echo(f"Edge {cfg.node_name} ({cfg.edge_id}) set up → {cfg.central_url}; replications are running.")
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


conflicts_app = typer.Typer(
    invoke_without_command=True,
    help="Phiếu bị sửa ở hai nơi / records edited in two places: every version, the one that counts.",
)


@conflicts_app.callback()
def conflicts(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    lang: str = typer.Option("", "--lang", help="vi or en."),
) -> None:
    """Records edited in two places: every version, and the one that counts (rule 1: an officer's choice, else
    the latest form end time, then received_at, then instanceID)."""
    if ctx.invoked_subcommand is not None:
        return
    from core.couch import Couch
    from edge.conflicts import find_conflicts, render_conflicts

    settings = get_settings()
    # read-only: never starts a stopped embedded store (it says how to start it instead)
    found = find_conflicts(Couch.from_settings(settings, start=False), settings, _choices(settings))
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in found], indent=2, ensure_ascii=False))
        return
    for line in render_conflicts(found, lang or settings.language):
        typer.echo(line)


def _choices(settings: Settings) -> dict[str, str]:
    """The officers' recorded choices (province: SQL); an edge node (no aggregator database) has none."""
    if settings.node_name != "province":
        return {}
    from sqlmodel import Session

    from aggregator.choices import stored_choices
    from aggregator.db import init_db

    with Session(init_db(settings)) as session:
        return stored_choices(session)


@conflicts_app.command("choose")
def choose(
    record: str = typer.Argument(..., help="The record: the original instanceID (as listed)."),
    instance_id: str = typer.Argument(..., help="The version that should count."),
    by: str = typer.Option("", "--by", help="Who decided (an officer's account name), kept with the choice."),
) -> None:
    """Make another version of a record edited in two places the one that counts (stored; applied at once)."""
    import getpass

    from aggregator.choices import choose_version

    out = choose_version(get_settings(), record, instance_id, chosen_by=by or getpass.getuser())
    typer.echo(
        f"Phiếu {out['record']}: tính phiên bản {out['counts']} (đã lưu, đã áp dụng). / "
        f"Record {out['record']}: version {out['counts']} counts (stored and applied)."
    )


def register(app: typer.Typer) -> None:
    app.add_typer(edge, name="edge", help="Edge node: local store replicating to the province.")
    app.add_typer(conflicts_app, name="conflicts")
