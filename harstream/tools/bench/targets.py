"""The project's performance targets, each with the measured value from a bench report and whether it is met."""

from __future__ import annotations

from typing import Any

import numpy as np

from harstream.tools.bench.compare import level_met, runs_by_count
from harstream.tools.bench.engine_cost import STATE_TARGET_BYTES


def targets(report: dict[str, Any]) -> dict[str, Any]:
    """The project's performance targets, each with the measured value and whether it is met."""
    out: dict[str, Any] = {}
    rates = report.get("runtimes", {})
    keras_256 = rates.get("keras", {}).get("256", {}).get("windows_per_s")
    if keras_256:
        best = max((name for name in rates if name != "naive" and "256" in rates[name]),
                   key=lambda name: rates[name]["256"]["windows_per_s"])
        speedup = rates[best]["256"]["windows_per_s"] / keras_256
        out["batch256_speedup_vs_keras"] = {"target": 1.5, "best": best, "value": round(speedup, 3),
                                            "met": speedup >= 1.5}
    state = report.get("state_bytes_per_stream")
    if state:
        out["state_per_stream_bytes"] = {"target": STATE_TARGET_BYTES, "value": state["steady"],
                                         "met": state["met"]}
    compared = (report.get("models") or {}).get("models", [])[1:]
    if compared:  # the benchmarked model against each compared one (e.g. the model shipped before)
        out["cost_third_of_compared"] = [
            {"model": row["path"], "target": "MFLOP and time per window <= 1/3 of the compared model's",
             "mflop_ratio": round(1 / row["vs_first"]["mflop"], 3),
             "time_ratio": round(1 / row["vs_first"]["cost_per_window"], 3),
             "met": row["vs_first"]["mflop"] >= 3.0 and row["vs_first"]["cost_per_window"] >= 3.0}
            for row in compared]
    if (report.get("load") or {}).get("streams_per_core"):
        out["streams_per_core"] = report["load"]["streams_per_core"]
    by_count = runs_by_count(report.get("load") or {})
    if by_count:
        # a count measured more than once is met only if every one of its runs met it
        ok = [count for count, runs in by_count.items() if all(level_met(lv) for lv in runs)]
        out["largest_streams_p99_le_100ms"] = max(ok) if ok else None
        if 4000 in by_count:
            runs = by_count[4000]
            p99s = [lv["latency_ms"].get("p99") for lv in runs]
            measured = [p for p in p99s if p is not None]
            out["streams_4000"] = {
                "target": "p99 <= 100 ms, no window lost",
                "p99_ms": float(np.median(measured)) if measured else None,  # the median run
                "runs_p99_ms": p99s,
                "lost": sum(lv["windows"]["lost"] for lv in runs),
                "runs_met": sum(level_met(lv) for lv in runs),
                "runs": len(runs),
                "met": all(level_met(lv) for lv in runs),
            }
        one = by_count[1][0] if 1 in by_count else None
        if one is not None:
            p50 = one["latency_ms"].get("p50")
            out["one_stream_p50"] = {"target_ms": 5.0, "value_ms": p50, "met": p50 is not None and p50 <= 5.0}
    return out
