"""Interleaved A/B of ``harstream serve`` options under the same live load, in one run.

    .venv/bin/python scripts/ab_serve.py --streams 4000 --repeats 2 --variant= \\
        --variant=--no-model-process [--send-tick 0,1] [--duration 20] [--data DIR] [--out ab.json]

Each repeat runs every variant in turn (a fresh ``serve`` each, the load
test of ``harstream bench --streams``: staggered real-time HAPT streams from
a separate process), so a shared machine's slow minutes fall on all variants
alike; each ``--checkout`` (another commit's tree) runs every variant again
with that version's ``serve``; each ``--send-tick`` value (the load generator's tick) multiplies
the variants. Prints one JSON line per variant, repeat and stream count; compare
variants within one run, by their medians. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harstream.paths import resolve_data_dir
from harstream.tools.loadtest.run import LoadConfig, run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="4000", help="comma-separated stream counts (default: 4000)")
    parser.add_argument("--variant", action="append", required=True,
                        help="serve arguments of one variant, as --variant='--max-batch 512' (--variant= for the "
                        "defaults); repeat")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all variants (default: 2)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per level (default: 20)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring (default: 10)")
    parser.add_argument("--data", type=Path, default=None, help="HAPT folder (default: as harstream finds it)")
    parser.add_argument("--send-tick", default="1",
                        help="the generator's shortest sleeps between sends, ms, comma-separated: each is a "
                        "variant too (default: 1; 0: wake per chunk)")
    parser.add_argument("--checkout", type=Path, action="append", default=[],
                        help="also run every variant from this checkout of another commit (e.g. a git worktree "
                        "of the baseline); repeat")
    parser.add_argument("--out", type=Path, default=None, help="also write every row to this JSON file")
    args = parser.parse_args()
    levels = [int(v) for v in args.streams.split(",")]
    data = resolve_data_dir(args.data)
    rows = []
    ticks = [float(v) for v in args.send_tick.split(",")]
    for repeat in range(args.repeats):
        checkouts: list[Path | None] = [None, *args.checkout]
        for tick, variant, checkout in [(t, v, c) for t in ticks for v in args.variant for c in checkouts]:
            serve_args = tuple(variant.split())
            config = LoadConfig(data_dir=data, duration_s=args.duration, warmup_s=args.warmup,
                                serve_args=serve_args, seed=repeat, send_tick_s=tick / 1000, checkout=checkout)
            report = run_load(levels, config, log=lambda text: print(time.strftime("%H:%M:%S"), text, flush=True))
            for level in report["levels"]:
                row = {"variant": variant or "(defaults)", "send_tick_ms": tick, "repeat": repeat,
                       "checkout": str(checkout) if checkout else "(this)",
                       "streams": level["streams"],
                       "windows_per_s": level.get("windows_per_s"), "latency_ms": level.get("latency_ms"),
                       "lost": level.get("windows", {}).get("lost"),
                       "engine_cpu_pct": level.get("engine", {}).get("cpu_pct"),
                       "machine_cpu_pct": level.get("clients", {}).get("machine_cpu_pct"),
                       "generator_cpu_pct": level.get("clients", {}).get("generator_cpu_pct"),
                       "gc_pause_max_ms": level.get("engine", {}).get("gc_pause_max_ms"),
                       "problem": level.get("problem")}
                rows.append(row)
                print(json.dumps(row), flush=True)
            if args.out:
                args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
