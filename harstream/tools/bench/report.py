"""The ``harstream bench`` report for people: the machine, the runtimes, engine state and the live path
as tables (:func:`print_bench`), the load test as a plot (:func:`plot_load`).

The report itself (a dict, what ``--json`` prints) comes from
:func:`harstream.tools.bench.run.run_full`; this module only renders it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["plot_load", "print_bench"]


def print_bench(result: dict[str, Any], console: Console) -> None:
    """The report of :func:`harstream.tools.bench.run.run_full` as tables."""
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
    costs = result.get("engine_costs")
    if costs:
        console.print(_loop_costs(costs), highlight=False)
    if result.get("models"):
        console.print(_compared_table(result))
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


def _loop_costs(costs: dict[str, Any]) -> str:
    """The serving loop's cost per real-time stream-second, by stage, largest first, beside the model's."""
    chunks, windows = 2.0, 50.0 / 64.0  # per stream-second: 25-sample chunks at 50 Hz, hop 64
    stages = {"decode": chunks * costs["decode_us_per_chunk"], "ingest": chunks * costs["ingest_us_per_chunk"],
              "classify": windows * costs["classify_us_per_window"],
              "encode": windows * costs["encode_us_per_window"]}
    if "publish_us_per_window" in costs:
        stages["publish"] = windows * costs["publish_us_per_window"]
    parts = ", ".join(f"{name} {value:.1f}" for name, value in sorted(stages.items(), key=lambda kv: -kv[1]))
    model = f"; the model {costs['model_us_per_stream_s']} us" if "model_us_per_stream_s" in costs else ""
    return (f"serving loop per stream-second at {costs['streams']:,} streams (us, the model left out): {parts}; "
            f"total {costs['gil_us_per_stream_s']}{model}")


def _compared_table(result: dict[str, Any]) -> Table:
    """``--compare``: each model's cost per window and, with a load test, its streams per core."""
    compared = result["models"]
    loads = [result.get("load") or {}, *(row["load"] for row in result.get("load_compared") or [])]
    batches = list(compared["models"][0]["batches"])
    table = Table(title=f"models side by side, same run (serving path; % of the {compared['peak_gflops']:,.0f} "
                        "GFLOP/s matmul peak)")
    for column in ("model", "architecture", "MFLOP", *(f"batch {b}" for b in batches),
                   "cost vs first", "streams/model core", "streams/core (load)"):
        table.add_column(column, justify="left" if column in ("model", "architecture") else "right")
    for index, row in enumerate(compared["models"]):
        cells = [f"{c['windows_per_s']:,.0f} ({100 * c['fraction_of_peak']:.0f}%) [{c['route']}]"
                 for c in row["batches"].values()]
        per_core = (loads[index] if index < len(loads) else {}).get("streams_per_core") or {}
        load_text = (f"{per_core['streams_per_core']:,} ({per_core['streams']:,} streams at "
                     f"{per_core['engine_cpu_pct']} % CPU)") if per_core.get("streams_per_core") else "-"
        vs = row["vs_first"]
        table.add_row(Path(row["path"]).name, row["architecture"], f"{row['mflop_per_window']:.2f}", *cells,
                      f"{vs['cost_per_window']:.2f}x time, {vs['mflop']:.2f}x MFLOP",
                      f"{row['streams_per_model_core']:,}", load_text)
    return table


def _measured(load: dict[str, Any]) -> list[dict[str, Any]]:
    return [lv for lv in (load or {}).get("levels", [])
            if not lv.get("problem") and lv["latency_ms"].get("p99") is not None]


def plot_load(report: dict[str, Any], path: Path, target_ms: float = 100.0) -> None:
    """PNG of the load test: latency p50/p99/max (log scale) against streams, windows lost marked; with
    ``--compare``, each compared model's p99 beside the benchmarked model's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = _measured(report.get("load") or {})
    if not levels:
        raise ValueError("the report has no measured load level to plot")
    compared = report.get("load_compared") or []
    name = Path(report.get("model", {}).get("path", "model")).stem
    n = [lv["streams"] for lv in levels]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=90)
    for key, style in (("max", ":"), ("p99", "-"), ("p50", "--")):
        ax.plot(n, [lv["latency_ms"][key] for lv in levels], style, marker="o",
                label=f"latency {key}" + (f", {name}" if compared else ""))
    for row in compared:
        other = _measured(row["load"])
        ax.plot([lv["streams"] for lv in other], [lv["latency_ms"]["p99"] for lv in other], "-", marker="s",
                label=f"latency p99, {Path(row['path']).stem}")
    ax.axhline(target_ms, color="black", ls="-.", lw=0.8, label=f"target p99 <= {target_ms:g} ms")
    for lv in levels + [lv for row in compared for lv in _measured(row["load"])]:
        if lv["windows"]["lost"]:
            ax.annotate(f"{lv['windows']['lost']:,} lost", (lv["streams"], lv["latency_ms"]["p99"]),
                        textcoords="offset points", xytext=(-10, 8), fontsize=8, color="tab:red")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent real-time streams (50 Hz, 25-sample chunks)")
    ax.set_ylabel("chunk sent -> prediction received (ms)")
    machine = report.get("machine", {})
    ax.set_title(f"harstream serve over loopback, {machine.get('nproc', '?')} cores "
                 f"({machine.get('cpu', '?')}); generator and subscriber on the same machine", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
