"""`harstream bench --json` end to end on a tiny configuration: the report's shape, not its speed.

One run (about 30-40 s on 2 cores): every runtime at batches 1 and 4, FLOPs,
the matmul peak, engine state per stream, and a 2-stream live load test
against a real `harstream serve` child. No timing assertion: the machine is
shared and noisy; only keys, types and sanity (finite, non-negative,
windows lost an int, runtimes agreeing with Keras) are checked.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harstream.tools.bench.compare import streams_per_core
from harstream.tools.bench.flops import model_flops, window_features_flops
from harstream.tools.bench.report import plot_load
from harstream.tools.bench.targets import targets
from harstream.tools.loadtest.generator import seq_offsets
from harstream.tools.loadtest.measure import expected_windows

pytestmark = pytest.mark.slow


def _finite_non_negative(value: Any, where: str) -> None:
    assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: {value!r}"
    assert math.isfinite(value) and value >= 0, f"{where}: {value!r}"


@pytest.fixture(scope="module")
def report(hapt_dir: Path) -> dict[str, Any]:
    shipped = Path(__file__).resolve().parents[1] / "harstream" / "model" / "shipped" / "harnet.keras"
    command = [sys.executable, "-m", "harstream", "bench", "--json", "--quick", "--batches", "1,4",
               "--streams", "2", "--warmup", "2", "--duration", "3", "--compare", str(shipped)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HARSTREAM_DATA": str(hapt_dir)})
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_runtimes_shape_and_agreement(report: dict[str, Any]) -> None:
    assert report["machine"]["nproc"] >= 1
    assert report["config"]["batches"] == [1, 4]
    rates = report["runtimes"]
    assert {"naive", "auto", "keras", "onnx"} <= set(rates)
    _finite_non_negative(rates["naive"]["windows_per_s"], "naive")
    for name, rows in rates.items():
        if name == "naive":
            continue
        assert set(rows) == {"1", "4"}, name
        for batch, row in rows.items():
            for key in ("windows_per_s", "vs_keras", "vs_naive", "gflops_per_s", "fraction_of_peak"):
                _finite_non_negative(row[key], f"{name}@{batch}.{key}")
    assert rates["keras"]["4"]["vs_keras"] == 1.0
    assert {rates["auto"][b]["route"] for b in ("1", "4")} <= {"keras", "onnx"}
    agreement = report["agreement"]
    assert "test-subject" in agreement["source"]
    for name in ("auto", "onnx", "naive"):
        _finite_non_negative(agreement[name]["max_abs_diff"], f"agreement {name}")
        assert agreement[name]["max_abs_diff"] < 1e-3, name  # the same model, whatever the runtime
        assert agreement[name]["windows"] > 0


def test_flops_peak_and_state(report: dict[str, Any]) -> None:
    flops = report["flops_per_window"]
    assert flops["total"] > 1_000_000 and flops["total"] >= flops["estimated_part"] > 0
    assert {row["type"] for row in flops["layers"]} >= {"Conv1D", "LSTM", "Dense", "WindowFeatures"}
    assert isinstance(flops["not_counted"], list)
    for threads, peak in report["matmul_peak_gflops"]["by_threads"].items():
        assert int(threads) >= 1
        _finite_non_negative(peak, f"peak {threads}")
    state = report["state_bytes_per_stream"]
    _finite_non_negative(state["steady"], "state steady")
    assert state["steady"] > 0 and isinstance(state["met"], bool)
    costs = report["engine_costs"]
    for key in ("decode_us_per_chunk", "ingest_us_per_chunk", "classify_us_per_window",
                "encode_us_per_window", "publish_us_per_window", "gil_us_per_stream_s"):
        _finite_non_negative(costs[key], key)
    _finite_non_negative(report["chain_samples_per_s"], "chain")
    assert "batch256_speedup_vs_keras" not in report["targets"]  # no batch 256 in this run


def test_load_level(report: dict[str, Any]) -> None:
    load = report["load"]
    assert load["engine_exit_code"] == 0
    assert load["config"]["send_tick_ms"] == 1.0  # the generator's default tick
    assert load["engine_ready"] and " ready: " in load["engine_ready"]
    (level,) = load["levels"]
    assert level["problem"] is None
    assert level["streams"] == 2
    windows = level["windows"]
    for key in ("expected", "received", "lost", "duplicates", "classified_by_engine"):
        assert isinstance(windows[key], int), key
    assert windows["expected"] >= windows["received"] >= 0
    assert windows["lost"] == windows["expected"] - windows["received"] >= 0
    assert windows["expected"] >= 2  # each stream completed a window within 5 s
    _finite_non_negative(level["windows_per_s"], "windows/s")
    latency = level["latency_ms"]
    assert isinstance(latency["count"], int)
    for key in ("p50", "p99", "max"):
        if latency["count"]:
            _finite_non_negative(latency[key], f"latency {key}")
    engine = level["engine"]
    _finite_non_negative(engine["cpu_pct"], "engine cpu")
    _finite_non_negative(engine["rss_mb"], "engine rss")
    assert engine["rss_mb"] > 10
    assert isinstance(engine["gc_collections"], int) and engine["gc_collections"] >= 0
    _finite_non_negative(engine["gc_pause_max_ms"], "gc pause max")
    assert engine["gc_pause_total_ms"] >= engine["gc_pause_max_ms"]
    for key in ("generator_cpu_pct", "subscriber_cpu_pct", "machine_cpu_pct"):
        _finite_non_negative(level["clients"][key], key)
    assert level["clients"]["foreign_predictions"] == 0
    assert report["targets"]["largest_streams_p99_le_100ms"] in (2, None)


def test_compare_measures_both_models_in_one_run(report: dict[str, Any], tmp_path: Path) -> None:
    first, other = report["models"]["models"]  # the default model, and the same file as --compare
    assert first["path"] == report["model"]["path"]
    assert first["weights_sha256"] == other["weights_sha256"]
    assert first["vs_first"] == {"mflop": 1.0, "cost_per_window": 1.0}
    assert other["vs_first"]["mflop"] == 1.0  # the same layers, counted the same way
    _finite_non_negative(other["vs_first"]["cost_per_window"], "cost ratio")
    for row in (first, other):
        assert row["mflop_per_window"] == round(report["flops_per_window"]["total"] / 1e6, 3)
        assert set(row["batches"]) == {"1", "4"}
        for batch in row["batches"].values():
            assert batch["route"] in ("keras", "onnx")
            _finite_non_negative(batch["windows_per_s"], "windows/s")
            _finite_non_negative(batch["fraction_of_peak"], "fraction of peak")
        _finite_non_negative(row["streams_per_model_core"], "streams per model core")
    (again,) = report["load_compared"]
    assert again["path"] == other["path"] and again["load"]["engine_exit_code"] == 0
    assert again["load"]["levels"][0]["streams"] == 2
    (target,) = report["targets"]["cost_third_of_compared"]
    assert target["met"] is False  # a model is not three times cheaper than itself
    plot_load(report, tmp_path / "load.png")  # both models' latency in one plot
    assert (tmp_path / "load.png").stat().st_size > 10_000


def test_streams_per_core_takes_the_largest_count_every_run_met() -> None:
    def level(streams: int, p99: float, lost: int, cpu: float) -> dict[str, Any]:
        return {"streams": streams, "latency_ms": {"p99": p99}, "windows": {"lost": lost},
                "engine": {"cpu_pct": cpu}}

    load = {"levels": [level(1000, 20.0, 0, 50.0), level(2000, 60.0, 0, 90.0), level(2000, 130.0, 0, 95.0),
                       level(3000, 80.0, 3, 120.0)]}
    assert streams_per_core(load) == {"streams": 1000, "engine_cpu_pct": 50.0, "p99_limit_ms": 100.0,
                                      "streams_per_core": 2000}
    assert streams_per_core({"levels": [level(10, 500.0, 0, 5.0)]}) is None


def test_expected_windows_follow_the_engine_grid() -> None:
    assert [expected_windows(n) for n in (0, 127, 128, 191, 192)] == [0, 0, 1, 1, 2]
    assert expected_windows(128, first=1) == 0  # the first window then ends at 191
    offsets = seq_offsets(1000)
    assert offsets.min() >= 0 and offsets.max() < 64 and len(set(offsets.tolist())) > 32


def test_flops_rules_on_a_small_model() -> None:
    import keras

    inputs = keras.Input((16, 3))
    x = keras.layers.Conv1D(4, 3, padding="valid", use_bias=False)(inputs)  # out_len 14
    x = keras.layers.LSTM(5)(x)
    outputs = keras.layers.Dense(2)(x)
    counted = model_flops(keras.Model(inputs, outputs))
    by_type = {row["type"]: row["flops"] for row in counted["layers"]}
    assert by_type["Conv1D"] == 2 * 3 * 3 * 4 * 14
    assert by_type["LSTM"] == 14 * (2 * 4 * (4 + 5) * 5 + 13 * 5)
    assert by_type["Dense"] == 2 * 5 * 2 + 2
    assert counted["total"] == sum(by_type.values())
    assert window_features_flops() > 2 * 2 * 128 * 11 * 65


def test_a_count_measured_twice_is_met_only_if_every_run_met_it() -> None:
    def level(streams: int, p99: float, lost: int = 0) -> dict[str, object]:
        return {"streams": streams, "latency_ms": {"p50": 1.0, "p99": p99}, "windows": {"lost": lost}}

    report = {"load": {"levels": [level(1, 3.0), level(3000, 40.0), level(4000, 135.0), level(4000, 20.0),
                                  level(4000, 30.0), level(5000, 50.0, lost=7)]}}
    out = targets(report)
    assert out["largest_streams_p99_le_100ms"] == 3000  # 4,000 failed once; 5,000 lost windows
    assert out["streams_4000"] == {"target": "p99 <= 100 ms, no window lost", "p99_ms": 30.0,
                                   "runs_p99_ms": [135.0, 20.0, 30.0], "lost": 0, "runs_met": 2,
                                   "runs": 3, "met": False}
    assert out["one_stream_p50"]["met"]
