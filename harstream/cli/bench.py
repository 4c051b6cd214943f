"""``harstream bench``: the model's runtimes, FLOPs, engine state and (``--streams``) the live path.

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--quick", "--batches", "1,4", "--streams", "10"])
>>> args.batches, args.streams, args.model_threads, args.repeats
([1, 4], [10], 1, None)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harstream.cli.args import add_data_arg, add_model_arg, float_in, int_in, int_list, print_json
from harstream.serve.run import ModelSettings

NAME = "bench"
HELP = "measure the model's runtimes, FLOPs, engine state and (--streams) the live path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream bench``."""
    parser.description = (
        "Measure in one run: the naive Keras baseline, the serving path and each backend "
        "(keras, onnx, xla) at each batch size with their agreement on real test windows, FLOPs per "
        "window against this machine's matmul peak, engine state per stream, and with --streams the "
        "live path end to end (a `harstream serve` child, a load generator and a subscriber process)."
    )
    add_model_arg(parser)
    add_data_arg(parser)
    parser.add_argument("--compare", type=Path, action="append", default=[],
                        help="another model to measure in the same run, e.g. the one shipped before (repeatable): "
                        "its serving path per batch, MFLOP, %% of the matmul peak, its cost against --model's, "
                        "and with --streams its own load test and streams per core")
    parser.add_argument("--batches", type=int_list(1, 4096), default=[1, 32, 256],
                        help="batch sizes, comma-separated (default: 1,32,256)")
    parser.add_argument("--repeats", type=int_in(1, 1000), default=None,
                        help="repeats; the median is reported (default: 5, --quick 2; --cluster: rounds)")
    parser.add_argument("--model-threads", type=int_in(0, 64), default=ModelSettings().model_threads,
                        help="TensorFlow threads per model call, as `serve --model-threads` (default: "
                        "%(default)s, serve's default; 0: TensorFlow's own)")
    parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the model compiled by XLA (default: on)")
    _add_load_options(parser)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    parser.add_argument("--plot", type=Path, default=None,
                        help="with --streams: write a PNG of latency against streams here")
    parser.add_argument("--quick", action="store_true",
                        help="small, fast measurements (a smoke test; the numbers are rough)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--web", action="store_true",
                        help="instead: simulated phones through `harstream web` (WebSocket, 50 Hz, 5 batches/s): "
                        "the gateway's CPU and added latency, windows lost (--phones, --duration, --warmup, "
                        "--serve-arg, --web-arg)")
    parser.add_argument("--phones", type=int_in(1, 100_000), default=500,
                        help="with --web: simulated phones (default: %(default)s)")
    parser.add_argument("--web-arg", action="append", default=[], metavar="ARG",
                        help="with --web: an extra `harstream web` argument (repeatable; --serve-arg for the "
                        "engine)")
    parser.add_argument("--cluster", type=int_list(1, 64), default=None, metavar="K,K,...",
                        help="instead: the load test through `harstream router` with K `serve --join` engines, "
                        "for each K (e.g. 1,2,3), and one engine bound directly as the reference, on loopback: "
                        "throughput, latency p50/p99, windows lost or published twice, the router's and the "
                        "engines' CPU per chunk, and the projection to N machines (docs/scaling.md). "
                        "--streams (default: 1000), --duration, --warmup, --repeats rounds, interleaved "
                        "(default: 3, --quick 1), --serve-arg for every engine")


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", type=int_list(1, 100_000), default=None,
                        help="load test: comma-separated stream counts, e.g. 1,500,1000 (default: none)")
    parser.add_argument("--duration", type=float_in(0.5, 3600.0), default=None,
                        help="load test: seconds measured per stream count (default: 30, --quick 3)")
    parser.add_argument("--warmup", type=float_in(0.0, 3600.0), default=None,
                        help="load test: seconds streamed before measuring (default: 10, --quick 2)")
    parser.add_argument("--aligned", action="store_true",
                        help="load test: every stream starts at seq 0, so all complete their windows in "
                        "the same 0.5 s (bursts); default: a random first seq per stream, as independent "
                        "devices")
    parser.add_argument("--send-tick", type=float_in(0.0, 100.0), default=1.0, metavar="MS",
                        help="load test: the generator's shortest sleep between sends, in ms; it then sends "
                        "every chunk that came due, and each latency counts from its chunk's send (default: "
                        "1; 0: a wake-up for every chunk, which costs the generator about 2.5x the CPU)")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="load test and --web: an extra `harstream serve` argument (repeatable, e.g. "
                        "--serve-arg=--max-batch=512); default: serve's defaults")


def run(args: argparse.Namespace) -> int:
    """Measure, write ``--out``/``--plot``, print the report; 0."""
    from harstream.tools.bench.report import print_bench
    from harstream.tools.bench.run import run_full

    err = Console(stderr=True)
    quick = args.quick
    if args.web:
        from harstream.web.bench import print_web_report, run_web_bench

        report = run_web_bench(args.phones, duration_s=args.duration or (5.0 if quick else 30.0),
                               warmup_s=args.warmup if args.warmup is not None else (5.0 if quick else 10.0),
                               log=lambda text: err.print(f"bench: {text}", highlight=False, markup=False),
                               serve_args=args.serve_arg, web_args=args.web_arg)
        if args.out is not None:
            args.out.write_text(json.dumps(report, indent=2) + "\n")
        if args.json:
            print_json(report)
        else:
            print_web_report(report, Console())
        return 0
    if args.json:
        def say(text: str) -> None:
            err.print(f"[dim]bench:[/] {escape(text)}", highlight=False)
    else:
        def say(text: str) -> None:
            err.print(f"bench: {text}", highlight=False, markup=False)
    if args.cluster:
        return _cluster(args, say)
    result = run_full(
        model=args.model, compare=args.compare, data=args.data, batches=args.batches,
        repeats=args.repeats if args.repeats is not None else (2 if quick else 5), quick=quick,
        model_threads=args.model_threads, xla=args.xla, streams=args.streams or [],
        duration_s=args.duration if args.duration is not None else (3.0 if quick else 30.0),
        warmup_s=args.warmup if args.warmup is not None else (2.0 if quick else 10.0),
        aligned=args.aligned, serve_args=args.serve_arg, send_tick_s=args.send_tick / 1000, log=say,
    )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.plot is not None and result.get("load"):
        from harstream.tools.bench.report import plot_load

        plot_load(result, args.plot)
    if args.json:
        print_json(result)
    else:
        print_bench(result, Console())
    return 0


def _cluster(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """``--cluster``: run it, write ``--out``, print the table or the JSON; 0."""
    from harstream.tools.bench.cluster import print_cluster, run_cluster_bench

    report = run_cluster_bench(args.cluster, data=args.data, streams=args.streams, rounds=args.repeats,
                               duration_s=args.duration, warmup_s=args.warmup, quick=args.quick,
                               aligned=args.aligned, serve_args=args.serve_arg, send_tick_s=args.send_tick / 1000,
                               log=say)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print_json(report)
    else:
        print_cluster(report, Console())
    return 0
