"""The ``harstream bench`` report for people: the machine, the runtimes, engine state and the live path as tables.

The report itself (a dict, what ``--json`` prints) comes from
:func:`harstream.tools.bench.run_full`; this module only renders it.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_bench"]


def print_bench(result: dict[str, Any], console: Console) -> None:
    """The report of :func:`harstream.tools.bench.run_full` as tables."""
    machine, config, rates = result["machine"], result["config"], result["runtimes"]
    console.print(f"machine: {machine['nproc']} cores, {machine['cpu']}; model "
                  f"{result['model']['architecture']} ({result['model']['parameters']:,} parameters); "
                  f"TensorFlow threads {config['model_threads']}, ONNX Runtime threads 1; medians of "
                  f"{config['repeats']}", highlight=False)
    flops = result["flops_per_window"]
    peaks = result["matmul_peak_gflops"]["by_threads"]
    peak_text = ", ".join(f"{v:,.0f} GFLOP/s on {k} thread(s)" for k, v in peaks.items())
    console.print(f"model: {flops['total'] / 1e6:.2f} MFLOP per window ({flops['estimated_part'] / 1e6:.2f} "
                  f"estimated); matmul peak {peak_text}", highlight=False)
    batches = [str(b) for b in config["batches"]]
    table = Table(title=f"windows/s (naive model.predict, one window per call: "
                        f"{rates['naive']['windows_per_s']:,.0f})")
    table.add_column("runtime")
    for b in batches:
        table.add_column(f"batch {b}", justify="right")
    table.add_column("max |p - keras|", justify="right")
    agreement = result["agreement"]
    for name, rows in rates.items():
        if name == "naive":
            continue
        cells = []
        for b in batches:
            row = rows[b]
            route = f" [{row['route']}]" if "route" in row else ""
            cells.append(f"{row['windows_per_s']:,.0f} ({row['vs_keras']:.2f}x, "
                         f"{100 * row['fraction_of_peak']:.0f}% peak){route}")
        diff = agreement.get(name, {}).get("max_abs_diff")
        table.add_row("auto (serve)" if name == "auto" else name, *cells,
                      "reference" if name == "keras" else (f"{diff:.1e}" if diff is not None else "-"))
    console.print(table)
    state = result["state_bytes_per_stream"]
    console.print(f"engine state: {state['steady'] / 1024:.1f} KiB per stream in steady state "
                  f"({state['after_one_chunk'] / 1024:.1f} KiB after one chunk); signal chain "
                  f"{result['chain_samples_per_s']:,.0f} samples/s", highlight=False)
    for path, row in result.get("models", {}).items():
        console.print(f"model {path}: {row['windows_per_s']:,.0f} windows/s", highlight=False)
    levels = (result.get("load") or {}).get("levels", [])
    if levels:
        load = Table(title="live path over loopback (latency: send of the completing chunk -> subscriber; "
                           "CPU %: 100 = one core)")
        for column in ("streams", "windows/s", "p50 ms", "p99 ms", "max ms", "lost", "engine CPU %",
                       "engine RSS MB", "$stats p50/p99 ms", "CPU % gen/sub/other"):
            load.add_column(column, justify="right")
        for lv in levels:
            if lv.get("problem"):
                load.add_row(str(lv["streams"]), lv["problem"], *[""] * 8)
                continue
            lat, eng, cli = lv["latency_ms"], lv["engine"], lv["clients"]
            load.add_row(str(lv["streams"]), f"{lv['windows_per_s']:,.1f}", str(lat["p50"]), str(lat["p99"]),
                         str(lat["max"]), str(lv["windows"]["lost"]), str(eng["cpu_pct"]), str(eng["rss_mb"]),
                         f"{eng['stats_latency_p50_ms_median']}/{eng['stats_latency_p99_ms_median']}",
                         f"{cli['generator_cpu_pct']}/{cli['subscriber_cpu_pct']}/"
                         f"{cli['other_processes_cpu_pct']}")
        console.print(load)
    for name, target in result.get("targets", {}).items():
        console.print(f"target {name}: {target}", highlight=False, markup=False)
