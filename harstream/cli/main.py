"""The ``harstream`` command: one verb per job.

serve · replay · record · dashboard · demo · train · evaluate · export · bench · data

Every verb has ``--help``; verbs that report numbers take ``--json``.
Heavy imports (TensorFlow, ZeroMQ) happen inside the verb that needs them,
so ``harstream --help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from harstream import __version__
from harstream.errors import HarstreamError
from harstream.paths import ENV_VAR

if TYPE_CHECKING:
    from harstream.engine.core import Engine
    from harstream.model.classifier import Classifier
    from harstream.model.process import ModelProcess
    from harstream.serve.server import ServerConfig, Sockets

Handler = Callable[[argparse.Namespace], int]
_err = Console(stderr=True)


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], with a one-line error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {value}")
        return value

    return parse


def _float_in(low: float, high: float, open_ends: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (or (low, high) with ``open_ends``)."""
    interval = f"({low:g}, {high:g})" if open_ends else f"[{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        inside = low < value < high if open_ends else low <= value <= high
        if not inside:  # NaN is never inside
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text}")
        return value

    return parse


_ENDPOINT = re.compile(r"tcp://(\*|[A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+(%[A-Za-z0-9_.\-]+)?\]):(\d{1,5}|\*)|ipc://.+")


def _endpoint(text: str) -> str:
    """An argparse type: a ZeroMQ endpoint tcp://HOST:PORT (``*`` for any) or ipc://PATH."""
    match = _ENDPOINT.fullmatch(text)
    port = match.group(3) if match else None
    if match is None or (port not in (None, "*") and not 1 <= int(port) <= 65535):
        raise argparse.ArgumentTypeError(
            f"expected an endpoint tcp://HOST:PORT (port 1-65535 or *) or ipc://PATH, got {text!r}"
        )
    return text


def _endpoint_or_none(text: str) -> str:
    """An argparse type: an endpoint as :func:`_endpoint`, or ``none``."""
    return text if text == "none" else _endpoint(text)


def _add_data_arg(parser: argparse.ArgumentParser, any_layout: bool = False) -> None:
    what = ("dataset folder: HAPT (holding RawData/) or MotionSense (holding A_DeviceMotion_data/), "
            "told apart by its layout" if any_layout else "HAPT dataset folder (holding RawData/)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"{what}; default: ${ENV_VAR}, else the user cache where `harstream data download` "
        "puts HAPT",
    )


def _add_model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, default=None,
        help="model artifact (.keras file with its .json beside it, or their folder); "
        "default: the model shipped with harstream",
    )


def _data_dir(args: argparse.Namespace) -> Path:
    from harstream.paths import resolve_data_dir

    return resolve_data_dir(args.data)


# --- data -------------------------------------------------------------------------------


def _cmd_data_download(args: argparse.Namespace) -> int:
    if args.dataset == "motionsense":
        from harstream.data import motionsense_download

        path = motionsense_download.download(
            args.dest, url=args.url or motionsense_download.DEFAULT_URL, console=_err,
            sha256=args.sha256 or motionsense_download.ARCHIVE_SHA256,
        )
    else:
        from harstream.data.download import DEFAULT_URL, download

        if args.sha256:
            raise HarstreamError("--sha256: HAPT's files are checked against the package manifest; "
                                 "expected --sha256 only with --dataset motionsense")
        path = download(args.dest, url=args.url or DEFAULT_URL, console=_err)
    _err.print(f"[green]dataset ready at {path}[/]")
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from harstream.data.download import check, print_check
    from harstream.data.layouts import find_layout

    data = _data_dir(args)
    if find_layout(data) == "motionsense":  # anything else is checked (and reported) as HAPT
        from harstream.data import motionsense_download

        report: Any = motionsense_download.check(data, checksums=not args.no_checksums)
        show: Callable[[Any, Console], None] = motionsense_download.print_check
    else:
        report, show = check(data, checksums=not args.no_checksums), print_check
    if args.json:
        from dataclasses import asdict

        _print_json(asdict(report))
    else:
        show(report, Console())
    return 1 if report.problems else 0


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from harstream.data.stats import print_stats, window_stats

    stats = window_stats(_data_dir(args))
    if args.json:
        _print_json(stats)
    else:
        print_stats(stats, Console())
    return 0


# --- train / evaluate -------------------------------------------------------------------


SHIPPED_TURN_DEGREES = 10.0
"""``train``'s default tilt augmentation: the shipped model's (docs/model.md)."""
SHIPPED_POCKET_TURNS = "other-leg"
"""``train``'s default pocket augmentation: the shipped model's (docs/model.md)."""
SHIPPED_WARP_TIME = 0.1
"""``train``'s default cadence augmentation from scratch: the shipped model's (docs/model.md)."""
POCKET_TURNS = ("none", "screen", "roll", "roll-upend", "roll-still", "roll-still-upend", "other-leg",
                "other-leg-upend")
"""The choices of ``--pocket-turns``: :data:`training.augment.POCKET_TURNS` (not imported here, so that
the CLI starts without numpy; a test checks the two agree)."""


def _cmd_train(args: argparse.Namespace) -> int:
    if args.base is not None:
        return _cmd_finetune(args)
    from training.train import TrainConfig, train

    config = TrainConfig(
        arch=args.arch, epochs=args.epochs, seed=args.seed,
        patience=10 if args.patience is None else args.patience,
        max_windows=args.max_windows, train_hop=args.train_hop, ema=args.ema, refit=args.refit,
        turn_degrees=SHIPPED_TURN_DEGREES if args.turn_degrees is None else args.turn_degrees,
        pocket_turns=args.pocket_turns, scale_motion=args.scale_motion, warp_time=args.warp_time,
    )
    from harstream.paths import resolve_data_dir, resolve_motionsense_dir

    if args.data:
        folders = [resolve_data_dir(d) for d in args.data]
    else:  # the shipped recipe: both placements
        folders = [resolve_data_dir(None), resolve_motionsense_dir()]
        if not folders[1].exists():
            raise HarstreamError(
                f"the default recipe trains on HAPT and MotionSense, and MotionSense was not found at "
                f"{folders[1]} (set $HARSTREAM_MOTIONSENSE, run `harstream data download --dataset "
                "motionsense`, or give --data for each dataset to train on)")
    metrics = train(folders, args.out, config, console=_err)
    if args.json:
        _print_json(metrics)
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from harstream.paths import resolve_data_dir, resolve_motionsense_dir
    from training.finetune import FinetuneConfig, finetune

    if args.refit or args.ema:
        raise HarstreamError("--base: expected no --refit or --ema (a fine-tune keeps the base model's "
                             "architecture and runs its own short schedule, docs/own-data.md)")
    if not args.data:
        raise HarstreamError("--base: expected --data DIR with your recordings (docs/own-data.md)")
    defaults = FinetuneConfig()
    config = FinetuneConfig(
        epochs=defaults.epochs if args.epochs is None else args.epochs,
        patience=defaults.patience if args.patience is None else args.patience,
        train_hop=args.train_hop, seed=args.seed, max_windows=args.max_windows,
        base_windows=args.base_windows, flips=args.pocket_turns != "none",
        turn_degrees=defaults.turn_degrees if args.turn_degrees is None else args.turn_degrees,
    )
    base_data = args.base_data or [resolve_data_dir(None)]
    if not args.base_data and config.base_windows:
        from harstream.data.layouts import find_layout

        if find_layout(resolve_motionsense_dir()) == "motionsense":  # the shipped model's second dataset
            base_data.append(resolve_motionsense_dir())
        if find_layout(base_data[0]) is None:
            raise HarstreamError(
                f"--base-data: the base model's training data is mixed in to keep what it knows, but the default "
                f"{base_data[0]} holds no dataset; run `harstream data download`, pass --base-data DIR, or "
                f"--base-windows 0 to fine-tune on your data alone"
            )
    metrics = finetune(args.base, args.data, args.out, config, base_data=base_data, console=_err)
    if args.json:
        _print_json(metrics)
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    import threading

    from harstream.tools.record import check_folder, describe, record

    check_folder(args.out)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def ready(endpoint: str) -> None:
        target = "nowhere (--engine none)" if args.engine == "none" else f"the engine at {args.engine}"
        _err.print(f"harstream record: listening on {endpoint}, forwarding to {target}, writing "
                   f"{args.out}; point the producer at {endpoint}", highlight=False, markup=False)

    summary = record(
        args.out, listen=args.listen, engine=None if args.engine == "none" else args.engine,
        label=args.label, activities=args.activity, duration_s=args.duration, stop=stop,
        progress=not args.no_progress, on_ready=ready,
    )
    if not args.no_progress and not _err.is_terminal:
        _err.print()  # after the live view's last frame
    if args.json:
        _print_json(summary)
    else:
        _err.print(describe(summary), highlight=False, markup=False, end="")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from harstream.model.classifier import Classifier
    from training.evaluate import evaluate, print_evaluation, write_report

    with _err.status("loading model..."):
        classifier = Classifier.load(args.model)
    with _err.status(f"classifying the {args.split} subjects' streams..."):
        result = evaluate(classifier, _data_dir(args), args.split)
    if args.report:
        write_report(result, args.report)
        _err.print(f"wrote the {args.split} report to {args.report}")
    if args.json:
        _print_json(result)
    else:
        print_evaluation(result, Console())
    return 0


# --- export -----------------------------------------------------------------------------


def _cmd_export(args: argparse.Namespace) -> int:
    from harstream.tools.export import export, print_report

    def say(text: str) -> None:
        _err.print(f"[dim]export:[/] {escape(text)}...", highlight=False)

    result = export(args.format, args.out, model=args.model, data_dir=args.data, batch=args.batch, log=say)
    if args.json:
        _print_json(result)
    else:
        print_report(result, Console())
    return 0


# --- serve ------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from harstream.engine.core import Engine
    from harstream.serve.server import ServerConfig, bind
    from harstream.signal.smoothing import ForwardFilter

    if args.model_processes > 1 and not args.model_process:
        raise HarstreamError(f"--model-processes {args.model_processes}: expected --model-process (the "
                             "default); --no-model-process classifies on one thread in this process")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = ServerConfig(
        ingest=args.ingest, publish=args.publish, max_batch=args.max_batch,
        max_pending_windows=args.max_pending_windows, idle_timeout_s=args.idle_timeout,
        max_streams=args.max_streams, max_queued_samples=args.max_queued_samples,
        turn_samples=args.turn_samples, ingest_hwm=args.ingest_hwm, publish_hwm=args.publish_hwm,
        flush_s=args.flush, switch_interval_ms=args.switch_interval, gather_ms=args.gather,
    )
    from harstream.serve.security import secure_server, server_security_from_args

    security = server_security_from_args(args)
    secure = None
    if security is not None:
        def secure(pull: Any, pub: Any) -> Callable[[], None]:
            authenticator = secure_server(pull.context, pull, pub, security)
            stop_auth: Callable[[], None] = authenticator.stop
            return stop_auth

    sockets = bind(config, secure=secure)  # before the model loads: a busy port fails at once
    loaded: list[Classifier | ModelProcess] = []
    try:
        with _err.status("loading and warming up the model..."):
            for _ in range(args.model_processes if args.model_process else 1):
                loaded.append(_load_classifier(args.model, args.max_batch, args.runtime, args.model_threads,
                                               args.model_process))
        classifier = loaded[0]
        engine = Engine(
            classifier.predict_proba, classifier.labels,
            ForwardFilter(len(classifier.labels), stay=args.stay),
            idle_timeout_s=args.idle_timeout, max_streams=args.max_streams,
        )
    except BaseException:
        sockets.close()
        _close_model_processes(loaded)
        raise
    try:
        return _serve_loaded(args, config, sockets, loaded, engine)
    finally:
        _close_model_processes(loaded)


def _close_model_processes(models: list[Classifier | ModelProcess]) -> None:
    from harstream.model.process import ModelProcess

    for model in models:
        if isinstance(model, ModelProcess):
            model.close()


def _serve_loaded(args: argparse.Namespace, config: ServerConfig, sockets: Sockets,
                  loaded: list[Classifier | ModelProcess], engine: Engine) -> int:
    """Serve with a loaded model (one classifier, or the model processes) until Ctrl-C or SIGTERM."""
    import signal
    import threading

    from harstream.gc_pauses import freeze_startup
    from harstream.model.process import ModelProcess
    from harstream.serve.server import serve

    stop = threading.Event()  # from here on, Ctrl-C and SIGTERM stop serving cleanly
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    classifier = loaded[0]
    models = [model for model in loaded if isinstance(model, ModelProcess)]

    def ready() -> None:
        if isinstance(classifier, ModelProcess):
            path, meta = classifier.info.path, json.loads(classifier.info.meta_json)
            pids = ", ".join(str(model.pid) for model in models)
            where = f", in model process{'es' if len(models) > 1 else ''} {pids}"
        else:
            path, meta, where = classifier.artifact.path, vars(classifier.artifact.meta), ""
        routes = sorted(set(classifier.routes.values()))
        _err.print(
            f"harstream engine {engine.id} ready: ingest (PULL) {sockets.ingest_endpoint}, publish "
            f"(PUB) {sockets.publish_endpoint}; model {path.name} "
            f"({meta['architecture']}, sha256 {meta['weights_sha256'][:12]}, runtime {'+'.join(routes)}{where}); "
            f"at most {config.max_streams} streams. Ctrl-C stops.",
            highlight=False, markup=False,
        )

    freeze_startup()  # full collections then skip the imports and the model: short pauses
    summary = serve(engine, config, stop=stop, on_ready=ready, sockets=sockets, model=models or None)
    _err.print(f"engine {engine.id} stopped: {summary.describe()}", highlight=False, markup=False)
    return 0


def _load_classifier(model: Path | None, max_batch: int, runtime: Any = "keras",
                     threads: int = 0, own_process: bool = False) -> Classifier | ModelProcess:
    """Load and warm up a model (with ``own_process``, in a model process of its own); any failure is
    one :class:`ArtifactError` line."""
    from harstream.errors import ArtifactError
    from harstream.model.classifier import Classifier, set_model_threads

    if own_process:
        from harstream.model.process import ModelProcess

        return ModelProcess(model, max_batch=max_batch, runtime=runtime, threads=threads)
    try:
        if threads:
            set_model_threads(threads)
        classifier = Classifier.load(model, max_batch=max_batch, runtime=runtime)
        classifier.warm_up()
    except HarstreamError:
        raise
    except Exception as exc:
        raise ArtifactError(f"cannot load the model {model or 'shipped with harstream'}: "
                            f"{type(exc).__name__}: {exc}") from None
    return classifier


# --- bench ------------------------------------------------------------------------------


def _int_list(low: int, high: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers, each in [low, high]."""
    one = _int_in(low, high)

    def parse(text: str) -> list[int]:
        values = [one(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
        return values

    return parse


def _cmd_bench(args: argparse.Namespace) -> int:
    from harstream.tools.bench import run_full

    quick = args.quick
    streams = args.streams or []
    if args.json:
        def say(text: str) -> None:
            _err.print(f"[dim]bench:[/] {escape(text)}", highlight=False)
    else:
        def say(text: str) -> None:
            _err.print(f"bench: {text}", highlight=False, markup=False)
    result = run_full(
        model=args.model, compare=args.compare, data=args.data, batches=args.batches,
        repeats=args.repeats if args.repeats is not None else (2 if quick else 5), quick=quick,
        model_threads=args.model_threads, xla=args.xla, streams=streams,
        duration_s=args.duration if args.duration is not None else (3.0 if quick else 30.0),
        warmup_s=args.warmup if args.warmup is not None else (2.0 if quick else 10.0),
        aligned=args.aligned, serve_args=args.serve_arg, send_tick_s=args.send_tick / 1000, log=say,
    )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.plot is not None and result.get("load"):
        from harstream.tools.bench import plot_load

        plot_load(result, args.plot)
    if args.json:
        _print_json(result)
    else:
        _print_bench(result, Console())
    return 0


def _print_bench(result: dict[str, Any], console: Console) -> None:
    """The bench report as tables."""
    from rich.table import Table

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


# --- replay / dashboard / demo ---------------------------------------------------------


def _cmd_replay(args: argparse.Namespace) -> int:
    from replay.command import run

    return run(args)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from harstream.tools.dashboard.app import run

    return run(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from harstream.tools.demo import run_demo, security_from_args

    return run_demo(
        args.data, args.ingest, args.publish, args.subjects, args.speed, args.logs, Console(),
        model=args.model, security=security_from_args(args),
    )


# --- parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb."""
    parser = argparse.ArgumentParser(
        prog="harstream",
        description="Streaming real-time human activity recognition over ZeroMQ.",
    )
    parser.add_argument("--version", action="version", version=f"harstream {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    data = verbs.add_parser("data", help="download, check and count the HAPT and MotionSense datasets")
    data_verbs = data.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    p = data_verbs.add_parser(
        "download", help="fetch a public dataset archive into the cache",
        description="Fetch HAPT (UCI dataset 341; every file checked against the package's SHA-256 "
        "manifest) or MotionSense (the official A_DeviceMotion_data.zip; no checksum of it is pinned, "
        "so it is verified by structure: 15 trials x 24 subjects, every file parsed by column name).",
    )
    p.add_argument("--dataset", choices=["hapt", "motionsense"], default="hapt",
                   help="which dataset (default: hapt)")
    p.add_argument("--dest", type=Path, default=None,
                   help="where to put it (default: the user cache, <cache>/harstream/<dataset>)")
    p.add_argument("--url", default=None,
                   help="archive URL (default: the UCI archive; for motionsense GitHub's "
                   "mmalekzadeh/motion-sense data/A_DeviceMotion_data.zip)")
    p.add_argument("--sha256", default=None, metavar="HEX",
                   help="motionsense: the archive's expected SHA-256, when you know it from a "
                   "trusted source (default: none pinned)")
    p.set_defaults(handler=_cmd_data_download)
    p = data_verbs.add_parser(
        "check", help="validate a dataset folder: layout, parse, checksums",
        description="Validate a HAPT or MotionSense folder. Checksums: HAPT against the package "
        "manifest; MotionSense's project copy (.csv.gz) against its shipped manifest, the official "
        ".csv files by structure and parsing only (no checksums of them are known).",
    )
    _add_data_arg(p, any_layout=True)
    p.add_argument("--no-checksums", action="store_true", help="skip the SHA-256 verification")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_data_check)
    p = data_verbs.add_parser("stats", help="windows per split and per (subject, activity)")
    _add_data_arg(p, any_layout=True)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(handler=_cmd_data_stats)

    p = verbs.add_parser(
        "train", help="train a model (selection on validation subjects only), or fine-tune one (--base)",
        description="Train a model from scratch on HAPT and/or MotionSense, or with --base fine-tune a "
        "model on your own recordings folders (docs/own-data.md): new classes are added by name, a sample "
        "of the base model's training data is mixed in so it keeps what it knows, and the epoch is chosen "
        "on held-out recordings.",
    )
    p.add_argument(
        "--data", type=Path, action="append", default=None, metavar="DIR",
        help="dataset folder, HAPT or MotionSense; repeat for both (one of each): training windows "
        f"are the union of their train splits, early stopping watches the union of their validation "
        f"splits (default: both, as the shipped model was trained: HAPT from ${ENV_VAR} or the user "
        "cache, MotionSense from $HARSTREAM_MOTIONSENSE, beside HAPT, or the cache). With --base: "
        "recordings folders (labels.csv + <name>.csv) and/or HAPT or MotionSense folders, repeatable",
    )
    p.add_argument("--base", default=None, metavar="PATH|shipped",
                   help="fine-tune this model artifact (or 'shipped', the model shipped with harstream) "
                   "on --data instead of training from scratch; --arch is then the base model's")
    p.add_argument("--base-data", type=Path, action="append", default=None, metavar="DIR",
                   help="with --base: folder of the base model's own training data, mixed in so the old "
                   f"classes are not forgotten (repeatable; default: HAPT at ${ENV_VAR}, else the user cache, "
                   "and MotionSense where `train` finds it)")
    p.add_argument("--base-windows", type=_int_in(0, 1_000_000), default=6000,
                   help="with --base: windows of the base model's training data mixed in (default: 6000; "
                   "0: none)")
    p.add_argument("--out", type=Path, required=True, help="folder for the artifact and report")
    p.add_argument("--arch", default="harnet-fusion",
                   choices=["harnet-fusion", "harnet", "harnet-fusion-frame", "harnet-gravity", "notebook"],
                   help="architecture (default: harnet-fusion, the shipped one; harnet: the CNN-LSTM "
                   "alone; notebook: the notebook's model, for comparison)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the cosine learning-rate schedule; early stopping may end sooner "
                   "(default: the architecture's, 16 for harnet-fusion, the shipped recipe; with --base 12)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--patience", type=int, default=None,
                   help="early-stopping patience in epochs (default: 10; with --base 4)")
    p.add_argument("--train-hop", type=int, default=16,
                   help="hop between training windows inside a segment (default: 16, "
                   "4x the 64 the engine uses: augmentation)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=False,
                   help="select and ship the moving average of the weights (default: off)")
    p.add_argument("--turn-degrees", type=float, default=None,
                   help="augmentation: turn each training window by a random rotation with this "
                   "standard deviation in degrees, as if the phone sat tilted (default: 10, the shipped recipe)")
    p.add_argument("--scale-motion", type=float, default=0.25, metavar="SIGMA",
                   help="augmentation: scale each training window's motion (not gravity) by "
                   "exp(Normal(0, SIGMA)), for people who move with more or less vigour (default: 0.25, the "
                   "shipped recipe; 0: off)")
    p.add_argument("--warp-time", type=float, default=SHIPPED_WARP_TIME, metavar="SIGMA",
                   help="augmentation: replay each training window at a random speed exp(Normal(0, SIGMA)), "
                   f"for faster or slower cadences (default: {SHIPPED_WARP_TIME:g}, the shipped recipe; 0: off; "
                   "not used with --base)")
    p.add_argument("--pocket-turns", choices=POCKET_TURNS, default=SHIPPED_POCKET_TURNS,
                   help="augmentation: how pocket (MotionSense) training windows are turned in the pocket. "
                   "screen: half of them about the phone's long axis, as if the screen faced the other way; "
                   "other-leg: that, and half the still ones as if in the other leg's pocket (gravity's x "
                   "mirrored); roll: each by a random angle about the long axis; roll-still: still ones "
                   "rolled, walking ones as by screen; *-upend: also half the walking ones upside down "
                   f"(default: {SHIPPED_POCKET_TURNS}, the shipped recipe; docs/model.md has what each "
                   "measured; with --base, anything but none flips your windows' screen side)")
    p.add_argument("--refit", action="store_true",
                   help="fit on training AND validation subjects for all --epochs, no early stopping "
                   "(take the epoch count from scripts/cross_validate.py)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="use at most this many windows per split (quick smoke runs)")
    p.add_argument("--json", action="store_true", help="print the training metrics as JSON")
    p.set_defaults(handler=_cmd_train)

    p = verbs.add_parser(
        "evaluate", help="score a model on a split (or a recordings folder), raw and smoothed",
        description="Score a model exactly as the engine serves it: every engine-grid window lying wholly "
        "inside one labelled span of a class the model has. HAPT and MotionSense are scored on a split, a "
        "recordings folder (docs/own-data.md) whole, per recording.",
    )
    _add_model_arg(p)
    _add_data_arg(p, any_layout=True)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"],
                   help="subjects to score, the dataset's own split (default: test; MotionSense's "
                   "test subjects are kept out of the project: use validation there)")
    p.add_argument("--report", type=Path, default=None,
                   help="also write confusion and per-subject plots and metrics JSON here")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(handler=_cmd_evaluate)
    p = verbs.add_parser(
        "export", help="write the classifier as ONNX or TFLite for on-device use (docs/on-device.md)",
        description="Write the classifier as one ONNX or TFLite file that takes the chain's windows "
        "(n, 128, 9) float32 in physical units and returns the class probabilities (standardisation "
        "inside). The file is run here on every engine-grid window of the model's test subjects and "
        "written only if it agrees with Keras (>= 99.9% of labels, probabilities within 1e-3).",
    )
    p.add_argument("--format", required=True, choices=["onnx", "tflite"],
                   help="onnx: any batch size (tf2onnx, opset 17); tflite: builtin ops only, fixed batch")
    _add_model_arg(p)
    p.add_argument("--out", type=Path, required=True,
                   help="file to write, ending in .onnx or .tflite (replaced only once the check passes)")
    p.add_argument("--batch", type=_int_in(1, 4096), default=None,
                   help="tflite only: the file's fixed batch size (default: 1, one window per call)")
    _add_data_arg(p)
    p.add_argument("--json", action="store_true",
                   help="print the report as JSON: agreement with Keras, file size, windows/s, chain")
    p.set_defaults(handler=_cmd_export)
    p = verbs.add_parser(
        "serve", help="run the engine: PULL ingest, PUB predictions",
        description="Run the engine: producers PUSH chunks to the ingest endpoint, subscribers "
        "SUB to the publish endpoint. Every limit below is published in $stats under 'limits'; "
        "input beyond a limit is refused or shed and reported on $error, never silently.",
    )
    p.add_argument("--ingest", default="tcp://127.0.0.1:5555", type=_endpoint,
                   help="endpoint to bind for producers (PULL; default tcp://127.0.0.1:5555)")
    p.add_argument("--publish", default="tcp://127.0.0.1:5556", type=_endpoint,
                   help="endpoint to bind for subscribers (PUB; default tcp://127.0.0.1:5556)")
    _add_model_arg(p)
    p.add_argument("--max-batch", type=_int_in(1, 4096), default=256,
                   help="most windows per model call, 1-4096 (default: 256)")
    p.add_argument("--runtime", choices=["auto", "keras", "onnx"], default="auto",
                   help="inference backend: auto measures Keras and ONNX Runtime at start and "
                   "uses the faster for each batch size (default: auto; both are verified to "
                   "agree within 1e-4)")
    p.add_argument("--model-threads", type=_int_in(1, 64), default=1,
                   help="threads of one model call; the ingest thread needs a core of its own "
                   "(default: 1)")
    p.add_argument("--model-process", action=argparse.BooleanOptionalAction, default=True,
                   help="run the model in a process of its own: the serving thread hands it batches and "
                   "goes on receiving and filtering while it computes (default: on; --no-model-process "
                   "classifies on an inference thread in this process, sharing its GIL)")
    p.add_argument("--model-processes", type=_int_in(1, 16), default=1, metavar="N",
                   help="with --model-process: this many model processes, each taking the next batch "
                   "when free; answers are published in the order the batches were submitted "
                   "(default: 1; each holds its own copy of the model, about 800 MB)")
    p.add_argument("--stay", type=_float_in(0.0, 1.0, open_ends=True), default=0.9,
                   help="smoother: probability the activity is unchanged between windows, "
                   "strictly between 0 and 1 (default: 0.9)")
    p.add_argument("--idle-timeout", type=_float_in(5.0, 86400.0), default=60.0,
                   help="forget streams silent for this many seconds, 5-86400; a stream that "
                   "comes back later starts afresh (default: 60)")
    limits = p.add_argument_group("resource limits")
    limits.add_argument("--max-streams", type=_int_in(1, 1_000_000), default=10_000,
                        help="streams held at once; a chunk opening one more gets $error "
                        "too_many_streams (default: 10000, about 12 KB each)")
    limits.add_argument("--max-queued-samples", type=_int_in(3000, 100_000_000), default=1_048_576,
                        help="samples received but not yet filtered; beyond it chunks are shed "
                        "with $error overloaded (default: 1048576, about 24 MB)")
    limits.add_argument("--max-pending-windows", type=_int_in(1, 1_000_000), default=1024,
                        help="windows cut and waiting for the model; beyond it, "
                        "filtering pauses and samples wait in the ingest queue (default: 1024)")
    limits.add_argument("--turn-samples", type=_int_in(3000, 10_000_000), default=131_072,
                        help="most samples filtered per loop turn, which keeps $stats on time "
                        "under load (default: 131072)")
    limits.add_argument("--ingest-hwm", type=_int_in(1, 1_000_000), default=1000,
                        help="ZeroMQ receive high-water mark, messages per producer connection "
                        "(default: 1000)")
    limits.add_argument("--publish-hwm", type=_int_in(1, 10_000_000), default=10_000,
                        help="ZeroMQ send high-water mark, messages per subscriber; a subscriber "
                        "further behind loses messages (default: 10000)")
    limits.add_argument("--gather", type=_float_in(0.0, 100.0), default=5.0, metavar="MS",
                        help="shortest time between two reads of the ingest socket while nothing "
                        "can be filtered now: arrivals gather, and a turn filters more chunks at "
                        "once for less CPU, each waiting at most this much longer; a lone stream "
                        "waits nothing (default: 5; 0: read each arrival at once)")
    limits.add_argument("--switch-interval", type=_float_in(0.1, 1000.0), default=20.0, metavar="MS",
                        help="the interpreter's thread switch interval while serving, ms: with "
                        "--no-model-process the ingest and inference threads share one GIL (default: 20; "
                        "Python's own is 5)")
    limits.add_argument("--flush", type=_float_in(0.0, 60.0), default=2.0,
                        help="on SIGINT/SIGTERM: seconds spent classifying and publishing what "
                        "is still held before exiting (default: 2)")
    from harstream.serve.security import add_server_key_arguments

    add_server_key_arguments(p)
    p.set_defaults(handler=_cmd_serve)

    p = verbs.add_parser(
        "keys", help="make and show CurveZMQ key pairs for access control (docs/security.md)"
    )
    from harstream.tools.keys import add_arguments as add_keys_arguments
    from harstream.tools.keys import run as run_keys

    add_keys_arguments(p)
    p.set_defaults(handler=run_keys)
    p = verbs.add_parser(
        "bench", help="measure the model's runtimes, FLOPs, engine state and (--streams) the live path",
        description="Measure in one run: the naive Keras baseline, the serving path and each backend "
        "(keras, onnx, xla) at each batch size with their agreement on real test windows, FLOPs per "
        "window against this machine's matmul peak, engine state per stream, and with --streams the "
        "live path end to end (a `harstream serve` child, a load generator and a subscriber process).",
    )
    _add_model_arg(p)
    _add_data_arg(p)
    p.add_argument("--compare", type=Path, action="append", default=[],
                   help="another model to measure in the same run (repeatable)")
    p.add_argument("--batches", type=_int_list(1, 4096), default=[1, 32, 256],
                   help="batch sizes, comma-separated (default: 1,32,256)")
    p.add_argument("--repeats", type=_int_in(1, 1000), default=None,
                   help="repeats; the median is reported (default: 5, --quick 2)")
    p.add_argument("--model-threads", type=_int_in(0, 64), default=1,
                   help="TensorFlow threads per model call, as `serve --model-threads` (default: 1, "
                   "serve's default; 0: TensorFlow's own)")
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=True,
                   help="also time the model compiled by XLA (default: on)")
    p.add_argument("--streams", type=_int_list(1, 100_000), default=None,
                   help="load test: comma-separated stream counts, e.g. 1,500,1000 (default: none)")
    p.add_argument("--duration", type=_float_in(0.5, 3600.0), default=None,
                   help="load test: seconds measured per stream count (default: 30, --quick 3)")
    p.add_argument("--warmup", type=_float_in(0.0, 3600.0), default=None,
                   help="load test: seconds streamed before measuring (default: 10, --quick 2)")
    p.add_argument("--aligned", action="store_true",
                   help="load test: every stream starts at seq 0, so all complete their windows in "
                   "the same 0.5 s (bursts); default: a random first seq per stream, as independent "
                   "devices")
    p.add_argument("--send-tick", type=_float_in(0.0, 100.0), default=1.0, metavar="MS",
                   help="load test: the generator's shortest sleep between sends, in ms; it then sends "
                   "every chunk that came due, and each latency counts from its chunk's send (default: "
                   "1; 0: a wake-up for every chunk, which costs the generator about 2.5x the CPU)")
    p.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                   help="load test: an extra `harstream serve` argument (repeatable, e.g. "
                   "--serve-arg=--max-batch=512); default: serve's defaults")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    p.add_argument("--plot", type=Path, default=None,
                   help="with --streams: write a PNG of latency against streams here")
    p.add_argument("--quick", action="store_true",
                   help="small, fast measurements (a smoke test; the numbers are rough)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(handler=_cmd_bench)
    p = verbs.add_parser("replay", help="turn recorded datasets into live streams; --score")
    from replay.command import add_arguments as add_replay_arguments

    add_replay_arguments(p)
    p.set_defaults(handler=_cmd_replay)

    p = verbs.add_parser(
        "record", help="record live streams into a recordings folder, passing them on to the engine",
        description="A pass-through in front of the engine's ingest: point the producer at --listen; every "
        "message goes on unchanged to --engine, and a copy is written to <out>/<stream>.csv "
        "(t,acc_x,...,gyro_z) with the activity spans in <out>/labels.csv, from --label or from keys "
        "pressed while recording (1-9, a, b, ...: an activity; 0 or space: unlabelled; q: stop). "
        "Fine-tune on the folder with `harstream train --base shipped --data <out>` (docs/own-data.md).",
    )
    p.add_argument("--out", type=Path, required=True,
                   help="recordings folder to write (created if needed; earlier sessions' files and labels "
                   "are kept)")
    p.add_argument("--label", default=None, metavar="ACTIVITY",
                   help="the activity of the whole session: one of the six classes or a new class name "
                   "(A-Z, 0-9, _); default: none until a key picks one")
    p.add_argument("--activity", action="append", default=[], metavar="NAME",
                   help="a new class name to offer on a key, after the six classes (repeatable)")
    p.add_argument("--listen", default="tcp://127.0.0.1:5565", type=_endpoint,
                   help="endpoint to bind for producers (PULL; default tcp://127.0.0.1:5565)")
    p.add_argument("--engine", default="tcp://127.0.0.1:5555", type=_endpoint_or_none,
                   help="the engine's ingest endpoint to forward to, or 'none' to record only "
                   "(default tcp://127.0.0.1:5555)")
    p.add_argument("--duration", type=_float_in(0.1, 86400.0), default=None, metavar="S",
                   help="stop after S seconds (default: at Ctrl-C or q)")
    p.add_argument("--no-progress", action="store_true", help="no live view on stderr")
    p.add_argument("--json", action="store_true", help="print the session's summary as JSON")
    p.set_defaults(handler=_cmd_record)

    p = verbs.add_parser("dashboard", help="live terminal view of the engine's streams")
    from harstream.tools.dashboard.app import add_arguments as add_dashboard_arguments

    add_dashboard_arguments(p)
    p.set_defaults(handler=_cmd_dashboard)

    p = verbs.add_parser("demo", help="engine + real-time replay of the test subjects + dashboard")
    _add_data_arg(p)
    _add_model_arg(p)
    p.add_argument("--subjects", default="2,4,9,10,12,13,18,20,24",
                   help="subjects to replay (default: the 9 test subjects)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="replay speed, 1 = real time (default: 1)")
    p.add_argument("--ingest", default="tcp://127.0.0.1:5555", help="engine ingest endpoint")
    p.add_argument("--publish", default="tcp://127.0.0.1:5556", help="engine publish endpoint")
    p.add_argument("--logs", type=Path, default=Path("/tmp/harstream-demo"),
                   help="folder for the engine and replay logs (default: /tmp/harstream-demo)")
    from harstream.tools.demo import add_key_arguments as add_demo_key_arguments

    add_demo_key_arguments(p)
    p.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``harstream`` command.

    ``kill -USR1 PID`` makes any verb write every thread's stack to stderr (diagnosing a hang).
    """
    if hasattr(signal, "SIGUSR1"):
        with contextlib.suppress(ValueError, OSError, AttributeError):  # stderr without a descriptor
            faulthandler.register(signal.SIGUSR1, all_threads=True)
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except HarstreamError as exc:
        _err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        _err.print("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
