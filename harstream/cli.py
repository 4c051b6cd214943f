"""The ``harstream`` command: one verb per job.

serve · replay · dashboard · demo · train · evaluate · bench · data

Every verb has ``--help``; verbs that report numbers take ``--json``.
Heavy imports (TensorFlow, ZeroMQ) happen inside the verb that needs them,
so ``harstream --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from . import __version__
from .errors import HarstreamError
from .paths import ENV_VAR

if TYPE_CHECKING:
    from .runtime import Classifier

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


def _add_data_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"HAPT dataset folder (holding RawData/); default: ${ENV_VAR}, else the user cache "
        "where `harstream data download` puts it",
    )


def _add_model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=Path, default=None,
        help="model artifact (.keras file with its .json beside it, or their folder); "
        "default: the model shipped with harstream",
    )


def _data_dir(args: argparse.Namespace) -> Path:
    from .paths import resolve_data_dir

    return resolve_data_dir(args.data)


# --- data -------------------------------------------------------------------------------


def _cmd_data_download(args: argparse.Namespace) -> int:
    from .download import DEFAULT_URL, download

    path = download(args.dest, url=args.url or DEFAULT_URL, console=_err)
    _err.print(f"[green]dataset ready at {path}[/]")
    return 0


def _cmd_data_check(args: argparse.Namespace) -> int:
    from .download import check, print_check

    report = check(_data_dir(args), checksums=not args.no_checksums)
    if args.json:
        from dataclasses import asdict

        _print_json(asdict(report))
    else:
        print_check(report, Console())
    return 1 if report.problems else 0


def _cmd_data_stats(args: argparse.Namespace) -> int:
    from training.stats import print_stats, window_stats

    stats = window_stats(_data_dir(args))
    if args.json:
        _print_json(stats)
    else:
        print_stats(stats, Console())
    return 0


# --- train / evaluate -------------------------------------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    from training.train import TrainConfig, train

    config = TrainConfig(
        arch=args.arch, epochs=args.epochs, seed=args.seed, patience=args.patience,
        max_windows=args.max_windows, train_hop=args.train_hop, ema=args.ema, refit=args.refit,
        turn_degrees=args.turn_degrees,
    )
    metrics = train(_data_dir(args), args.out, config, console=_err)
    if args.json:
        _print_json(metrics)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate, print_evaluation, write_report

    from .runtime import Classifier

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


# --- serve ------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from .engine import Engine
    from .server import ServerConfig, bind, serve
    from .smoothing import ForwardFilter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = ServerConfig(
        ingest=args.ingest, publish=args.publish, max_batch=args.max_batch,
        max_pending_windows=args.max_pending_windows, idle_timeout_s=args.idle_timeout,
        max_streams=args.max_streams, max_queued_samples=args.max_queued_samples,
        turn_samples=args.turn_samples, ingest_hwm=args.ingest_hwm, publish_hwm=args.publish_hwm,
        flush_s=args.flush,
    )
    from .security import secure_server, server_security_from_args

    security = server_security_from_args(args)
    secure = None
    if security is not None:
        def secure(pull: Any, pub: Any) -> Callable[[], None]:
            authenticator = secure_server(pull.context, pull, pub, security)
            stop_auth: Callable[[], None] = authenticator.stop
            return stop_auth

    sockets = bind(config, secure=secure)  # before the model loads: a busy port fails at once
    try:
        with _err.status("loading and warming up the model..."):
            classifier = _load_classifier(args.model, args.max_batch, args.runtime, args.model_threads)
        engine = Engine(
            classifier.predict_proba, classifier.labels,
            ForwardFilter(len(classifier.labels), stay=args.stay),
            idle_timeout_s=args.idle_timeout, max_streams=args.max_streams,
        )
    except BaseException:
        sockets.close()
        raise
    stop = threading.Event()  # from here on, Ctrl-C and SIGTERM stop serving cleanly
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def ready() -> None:
        meta = classifier.artifact.meta
        routes = sorted(set(classifier.routes.values()))
        _err.print(
            f"harstream engine {engine.id} ready: ingest (PULL) {sockets.ingest_endpoint}, publish "
            f"(PUB) {sockets.publish_endpoint}; model {classifier.artifact.path.name} "
            f"({meta.architecture}, sha256 {meta.weights_sha256[:12]}, runtime {'+'.join(routes)}); "
            f"at most {config.max_streams} streams. Ctrl-C stops.",
            highlight=False, markup=False,
        )

    summary = serve(engine, config, stop=stop, on_ready=ready, sockets=sockets)
    _err.print(f"engine {engine.id} stopped: {summary.describe()}", highlight=False, markup=False)
    return 0


def _load_classifier(model: Path | None, max_batch: int, runtime: Any = "keras",
                     threads: int = 0) -> Classifier:
    """Load and warm up a model; any failure is one :class:`ArtifactError` line."""
    from .errors import ArtifactError
    from .runtime import Classifier, set_model_threads

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


def _cmd_bench(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .bench import run_bench
    from .runtime import Classifier

    models = [Classifier.load(args.model), *(Classifier.load(p) for p in args.compare)]
    with _err.status("measuring (medians of repeated runs)..."):
        result = run_bench(models, batch=args.batch, repeats=args.repeats)
    if args.json:
        _print_json(result)
        return 0
    table = Table(title=f"model throughput at batch {args.batch} (median of {args.repeats})")
    for column in ("model", "architecture", "parameters", "windows/s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for path, row in result["models"].items():
        table.add_row(path, row["architecture"], f"{row['parameters']:,}",
                      f"{row['windows_per_s']:,.0f}")
    Console().print(table)
    Console().print(f"signal chain: {result['chain_samples_per_s']:,.0f} samples/s "
                    "(1,000 streams x 25-sample chunks per call)")
    return 0


# --- replay / dashboard / demo ---------------------------------------------------------


def _cmd_replay(args: argparse.Namespace) -> int:
    from replay.command import run

    return run(args)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import run

    return run(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo, security_from_args

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

    data = verbs.add_parser("data", help="download, check and count the HAPT dataset")
    data_verbs = data.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    p = data_verbs.add_parser("download", help="fetch the public HAPT archive into the cache")
    p.add_argument("--dest", type=Path, default=None, help="where to put it (default: user cache)")
    p.add_argument("--url", default=None, help="archive URL (default: the UCI archive)")
    p.set_defaults(handler=_cmd_data_download)
    p = data_verbs.add_parser("check", help="validate a dataset folder: layout, parse, checksums")
    _add_data_arg(p)
    p.add_argument("--no-checksums", action="store_true", help="skip the SHA-256 verification")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_cmd_data_check)
    p = data_verbs.add_parser("stats", help="windows per split and per (subject, activity)")
    _add_data_arg(p)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(handler=_cmd_data_stats)

    p = verbs.add_parser("train", help="train a model (selection on validation subjects only)")
    _add_data_arg(p)
    p.add_argument("--out", type=Path, required=True, help="folder for the artifact and report")
    p.add_argument("--arch", default="harnet-fusion",
                   choices=["harnet-fusion", "harnet", "harnet-fusion-frame", "harnet-gravity", "notebook"],
                   help="architecture (default: harnet-fusion, the shipped one; harnet: the CNN-LSTM "
                   "alone; notebook: the notebook's model, for comparison)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the cosine learning-rate schedule; early stopping may end sooner "
                   "(default: the architecture's, 8 for harnet-fusion)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--patience", type=int, default=10,
                   help="early-stopping patience in epochs (default: 10)")
    p.add_argument("--train-hop", type=int, default=16,
                   help="hop between training windows inside a segment (default: 16, "
                   "4x the 64 the engine uses: augmentation)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=False,
                   help="select and ship the moving average of the weights (default: off)")
    p.add_argument("--turn-degrees", type=float, default=0.0,
                   help="augmentation: turn each training window by a random rotation with this "
                   "standard deviation in degrees, as if the phone sat tilted (default: 0, off)")
    p.add_argument("--refit", action="store_true",
                   help="fit on training AND validation subjects for all --epochs, no early stopping "
                   "(take the epoch count from scripts/cross_validate.py)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="use at most this many windows per split (quick smoke runs)")
    p.add_argument("--json", action="store_true", help="print the training metrics as JSON")
    p.set_defaults(handler=_cmd_train)

    p = verbs.add_parser("evaluate", help="score a model on a split, raw and smoothed")
    _add_model_arg(p)
    _add_data_arg(p)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"],
                   help="subjects to score (default: test)")
    p.add_argument("--report", type=Path, default=None,
                   help="also write confusion and per-subject plots and metrics JSON here")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.set_defaults(handler=_cmd_evaluate)
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
                        help="windows cut and waiting for the inference thread; beyond it, "
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
    limits.add_argument("--flush", type=_float_in(0.0, 60.0), default=2.0,
                        help="on SIGINT/SIGTERM: seconds spent classifying and publishing what "
                        "is still held before exiting (default: 2)")
    from .security import add_server_key_arguments

    add_server_key_arguments(p)
    p.set_defaults(handler=_cmd_serve)

    p = verbs.add_parser(
        "keys", help="make and show CurveZMQ key pairs for access control (docs/security.md)"
    )
    from .keys_command import add_arguments as add_keys_arguments
    from .keys_command import run as run_keys

    add_keys_arguments(p)
    p.set_defaults(handler=run_keys)
    p = verbs.add_parser("bench", help="measure model windows/s and signal-chain samples/s")
    _add_model_arg(p)
    p.add_argument("--compare", type=Path, action="append", default=[],
                   help="another model to measure in the same run (repeatable)")
    p.add_argument("--batch", type=int, default=256, help="batch size (default: 256)")
    p.add_argument("--repeats", type=int, default=5, help="repeats; the median is reported")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(handler=_cmd_bench)
    p = verbs.add_parser("replay", help="turn recorded datasets into live streams; --score")
    from replay.command import add_arguments as add_replay_arguments

    add_replay_arguments(p)
    p.set_defaults(handler=_cmd_replay)

    p = verbs.add_parser("dashboard", help="live terminal view of the engine's streams")
    from .dashboard import add_arguments as add_dashboard_arguments

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
    from .demo import add_key_arguments as add_demo_key_arguments

    add_demo_key_arguments(p)
    p.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``harstream`` command."""
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
