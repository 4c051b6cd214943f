"""`harstream bench --web` in miniature: a few simulated phones, every window delivered, nothing dropped."""

from __future__ import annotations

import pytest

pytest.importorskip("aiohttp", reason="the web extra is not installed: pip install -e '.[web]'")

from harstream.web.bench import run_web_bench


@pytest.mark.slow
def test_a_few_phones_lose_nothing() -> None:
    report = run_web_bench(phones=5, duration_s=3.0, warmup_s=3.0, log=lambda text: None)
    assert report["windows_expected"] > 0 and report["windows_lost"] == 0, report
    assert report["gateway"]["dropped_samples"] == {} and report["gateway"]["refused"] == {}
    assert report["gateway"]["samples_in"] == 5 * 6 * 50  # 6 s at 50 Hz each
    added = report["latency_ms"]["added"]
    assert added["p50"] is not None and added["p50"] <= added["p99"] <= added["max"]
    inbound = report["latency_ms"]["inbound"]
    # a batch reaches the engine after it is sent
    assert inbound["p50"] is not None and 0 < inbound["p50"] <= inbound["p99"]
