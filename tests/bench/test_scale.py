"""bench_scale at test size: every step runs (rebuild, refresh, the district API and HTML report, each in a
process of its own) and reports its figures and growth ratios. No timing is asserted: the machine is
shared."""

from __future__ import annotations

import math

import pytest

from bench import bench_scale

pytestmark = pytest.mark.slow


def test_scale_bench_at_test_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_SCALE_SIZES", "1000,5000")
    f = bench_scale.run(quick=True)
    for n in (1000, 5000):
        assert f[f"child_rows_{n}"] == n
        assert f[f"rebuild_cells_{n}"] > 0 and f[f"rebuild_peak_rss_mb_{n}"] > 0
        assert f[f"refresh_p95_s_{n}"] >= f[f"refresh_p50_s_{n}"] > 0
        assert f[f"api_p95_ms_{n}"] > 0 and f[f"report_p50_s_{n}"] > 0
    for ratio in ("rebuild_growth", "rebuild_rss_growth", "refresh_p95_growth", "api_p95_growth"):
        assert math.isfinite(f[ratio]) and f[ratio] > 0
