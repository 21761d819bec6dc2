"""Run every benchmark module (bench/bench_*.py) or the ones named: `python -m bench [name ...] [--quick]`.

Each module exposes ``run(quick: bool) -> dict`` returning its figures; ratios are computed against a baseline
measured in the same run (the machines are noisy, so absolute timings mean little). Results are printed
as a table and written to bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("names", nargs="*", help="benchmark names (bench_<name>.py); default: all")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = ap.parse_args()
    available = sorted(
        m.name[len("bench_") :] for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_")
    )
    names = args.names or available
    console = Console()
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    for name in names:
        if name not in available:
            raise SystemExit(f"bench: unknown benchmark {name!r}; available: {', '.join(available)}")
        console.rule(f"bench {name}")
        mod = importlib.import_module(f"bench.bench_{name}")
        figures = mod.run(quick=args.quick)
        table = Table("figure", "value")
        for k, v in figures.items():
            table.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
        console.print(table)
        (out_dir / f"{name}.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
