"""The flow benchmark stays runnable, and records its section without touching the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bench_flows


def test_the_benchmark_sessions_are_real_work() -> None:
    bench_flows.check_sessions()
    steps, elapsed, cpu = bench_flows.run_for(0.05, "engine")
    assert steps > 0
    assert elapsed > 0
    assert cpu >= 0


@pytest.mark.parametrize("variant", ["json", "render"])
def test_the_other_variants_run(variant: str) -> None:
    steps, _elapsed, _cpu = bench_flows.run_for(0.02, variant)
    assert steps > 0


def test_the_section_is_added_then_replaced_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "RESULTS.md"
    monkeypatch.setattr(bench_flows, "RESULTS", results)
    bench_flows.write_section("## Flow engine\n\nfirst\n")
    assert results.read_text(encoding="utf-8") == "# Benchmark results\n\n## Flow engine\n\nfirst\n"
    results.write_text(
        "# Benchmark results\n\n## Import\n\nkeep me\n\n## Flow engine\n\nold\n\n## Report\n\nkeep me too\n",
        encoding="utf-8",
    )
    bench_flows.write_section("## Flow engine\n\nnew\n")
    assert results.read_text(encoding="utf-8") == (
        "# Benchmark results\n\n## Import\n\nkeep me\n\n## Flow engine\n\nnew\n\n## Report\n\nkeep me too\n"
    )
