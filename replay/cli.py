"""The ``harstream replay`` verb: recorded datasets into a running engine, optionally scored.

It plugs into the ``harstream`` command through the ``harstream.verbs`` entry
point (pyproject.toml): ``NAME`` and ``HELP`` list it, ``add_arguments``
fills its parser, ``run`` executes it. Imports that load numpy or ZeroMQ
wait until the verb is chosen, so ``harstream --help`` stays instant.

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--subjects", "2,4", "--speed", "0", "--copies", "3"])
>>> args.subjects, args.speed, args.copies, args.chunk
({2, 4}, 0.0, 3, 25)
>>> sorted(resolve_subjects("validation", "motionsense")), sorted(resolve_subjects("default", "motionsense"))
([1, 7, 13, 19], [1, 7, 13, 19])
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harstream.cli.args import float_in, int_in, print_json, speed
from harstream.cli.security_args import add_client_key_arguments, client_security_from_args
from harstream.errors import HarstreamError
from harstream.paths import ENV_VAR

NAME = "replay"
HELP = "turn recorded datasets into live streams; --score"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream replay``."""
    from harstream import DEFAULT_INGEST, DEFAULT_PUBLISH, MAX_SAMPLES_PER_CHUNK
    from harstream.protocol import MAX_RATE_HZ, MIN_RATE_HZ

    parser.add_argument(
        "--data", type=Path, default=None,
        help=f"dataset folder: HAPT (holding RawData/), MotionSense (holding A_DeviceMotion_data/), "
        f"a recordings folder (labels.csv and <name>.csv, docs/own-data.md) or UCI HAR (train/, test/ "
        f"with Inertial Signals/); default: ${ENV_VAR}, else the user cache",
    )
    parser.add_argument(
        "--subjects", type=_subjects, default="default", metavar="LIST",
        help="subjects to replay: ids like 2,4,9, a split of the dataset (train, validation, "
        "test) or 'all' (default: the held-out subjects: HAPT's and UCI HAR's 9 test subjects; "
        "MotionSense's 4 validation subjects, its test subjects being kept out of the project)",
    )
    parser.add_argument("--speed", type=speed, default=1.0,
                        help="times real time; 0 = as fast as the engine takes it (default: 1)")
    parser.add_argument("--chunk", type=int_in(1, MAX_SAMPLES_PER_CHUNK), default=25,
                        help="samples per message at 50 Hz, scaled to the same duration at "
                        "other --rate (default: 25 = 0.5 s)")
    device = parser.add_argument_group(
        "device", "send as another phone would: the engine resamples every stream to 50 Hz and "
        "converts units, and --score still scores against the recordings' truth")
    device.add_argument("--rate", type=float_in(MIN_RATE_HZ, MAX_RATE_HZ), default=50.0, metavar="HZ",
                        help="sample rate to send at, 20-500 Hz (the 50 Hz recordings are "
                        "resampled band-limited; default: 50)")
    device.add_argument("--jitter", type=float, default=0.0, metavar="MS",
                        help="send per-sample timestamps, each sample taken up to ±MS/2 off its "
                        "nominal instant (default: 0, regular and no timestamps)")
    device.add_argument("--units", choices=["g,rad/s", "m/s2,rad/s", "g,deg/s", "m/s2,deg/s"],
                        default="g,rad/s", help="units of acceleration and angular rate to send "
                        "(default: g,rad/s)")
    parser.add_argument("--copies", type=int_in(1), default=1,
                        help="send every stream K times, copies named <id>.c2, <id>.c3, ... "
                        "(load test; default: 1)")
    parser.add_argument("--tag", default=None,
                        help="append .TAG to every stream id: fresh ids when the engine still "
                        "holds the previous replay's streams (it forgets them after its idle "
                        "timeout)")
    parser.add_argument("--endpoint", default=DEFAULT_INGEST,
                        help=f"the engine's ingest endpoint (default: {DEFAULT_INGEST})")
    parser.add_argument("--score", action="store_true",
                        help="subscribe to the engine's output and score it against the truth")
    parser.add_argument("--connect", default=DEFAULT_PUBLISH, metavar="PUB_ENDPOINT",
                        help=f"the engine's output endpoint, with --score "
                        f"(default: {DEFAULT_PUBLISH})")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="with --score: stop waiting after S seconds without a prediction "
                        "once everything is sent (default: 10)")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="with --score: save a timeline of predicted vs true activity")
    parser.add_argument("--json", action="store_true",
                        help="print the score (or, without --score, what was sent) as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_client_key_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Execute ``harstream replay``; 0 on success, 1 when nothing came back, 130 on Ctrl-C."""
    from harstream.data.device import Device
    from harstream.paths import resolve_data_dir
    from replay.sources import detect_layout, load_streams, tagged

    if args.plot is not None and not args.score:
        raise HarstreamError(f"--plot {args.plot}: expected --score as well (it plots the score)")
    security = client_security_from_args(args)
    acc_unit, gyro_unit = args.units.split(",")
    try:
        device = Device(args.rate, args.jitter, acc_unit, gyro_unit)
    except ValueError as exc:
        raise HarstreamError(str(exc)) from None
    err = Console(stderr=True)
    data = resolve_data_dir(args.data)
    subjects = resolve_subjects(args.subjects, detect_layout(data))
    with err.status(f"reading {data} ..."):
        streams = tagged(load_streams(data, subjects), args.tag)
    progress = not args.no_progress
    if not args.score:
        from replay.player import play

        summary = play(streams, args.endpoint, args.speed, args.chunk, args.copies, progress, err,
                       security=security, device=device)
        if args.json:
            print_json(dataclasses.asdict(summary))
        else:
            what = "interrupted after sending" if summary.interrupted else "sent"
            err.print(f"{what} {summary.samples:,} samples of {summary.streams} streams in "
                      f"{summary.messages:,} messages, {summary.seconds:.1f} s")
        return 130 if summary.interrupted else 0

    from replay.session import score_replay

    scorer = score_replay(streams, args.endpoint, args.connect, args.speed, args.chunk,
                          args.copies, args.timeout, progress, err, security=security, device=device)
    report = scorer.report()
    if args.plot is not None:
        from replay.plot import plot_timeline

        err.print(f"wrote the timeline to {plot_timeline(scorer, args.plot)}")
    if args.json:
        print_json(report)
    else:
        print_report(report, Console())
    if scorer.interrupted:
        return 130
    if report["windows_received"] == 0:
        if not scorer.engine_seen:
            err.print(f"[red]nothing came back from {args.connect}[/]: is `harstream serve` "
                      f"running, publishing there and reading {args.endpoint}?")
            if security is not None:
                err.print(f"with keys: does the engine use the key pair of {security.server_key_file}, "
                          f"and allow the public key of {security.key_file} as producer and "
                          "subscriber?")
        return 1
    return 0


def print_report(report: dict[str, Any], console: Console) -> None:
    """The score as a short readable table."""
    table = Table(title="replay score", show_header=True, header_style="bold")
    table.add_column("", style="bold")
    table.add_column("raw window", justify="right")
    table.add_column("smoothed", justify="right")
    table.add_row("accuracy", _pct(report["accuracy"]), _pct(report["smoothed_accuracy"]))
    table.add_row("macro-F1", _pct(report["macro_f1"]), _pct(report["smoothed_macro_f1"]))
    console.print(table)
    lat = report["latency_ms"]
    console.print(
        f"windows: {report['windows_received']:,} of {report['windows_expected']:,} received "
        f"({report['windows_missing']:,} missing, {report['duplicates']} duplicates, "
        f"{report['unexpected']} unexpected), {report['n_scored']:,} scored "
        f"over {report['streams']} streams"
    )
    if report.get("engine_restarts"):
        console.print(
            f"[yellow]the engine restarted {report['engine_restarts']} time(s) during the replay: "
            f"{report['windows_lost_to_restarts']:,} of the missing windows were lost to the "
            "restart(s) (each restarted stream needs 128 new samples for its next window)[/]"
        )
    if lat["p50"] is not None:
        console.print(f"engine latency: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, "
                      f"max {lat['max']:.1f} ms")
    if report["errors"]:
        codes = ", ".join(f"{code} x{n}" for code, n in report["errors"].items())
        console.print(f"[yellow]engine errors for these streams: {codes}[/]")
        if "seq_replay" in report["errors"]:
            console.print("[yellow]seq_replay: the engine still holds these stream ids from an "
                          "earlier replay; wait for it to drop idle streams, or pass --tag "
                          "to send fresh ids[/]")
    if report.get("interrupted"):
        console.print("[yellow]interrupted: partial score[/]")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


# -- argument types (argparse turns their ValueError/ArgumentTypeError into a usage error) ------


SPLIT_NAMES = ("train", "validation", "test", "default")
"""``--subjects`` names resolved once the dataset's layout is known (:func:`resolve_subjects`)."""


def resolve_subjects(choice: set[int] | str | None, layout: str) -> set[int] | None:
    """The subjects of a ``--subjects`` value for a dataset of ``layout`` (None: every one).

    A split name takes that dataset's split (UCI HAR has HAPT's subjects);
    ``"default"`` is the held-out split: ``test``, or ``validation`` on MotionSense. A recordings
    folder is replayed whole (its one subject is the person who recorded it).
    """
    if layout == "recordings" and choice in ("default", None):
        return None
    if not isinstance(choice, str):
        return choice
    from harstream.data.splits import DATASET_SPLITS

    splits = DATASET_SPLITS["motionsense" if layout == "motionsense" else "hapt"]
    if choice == "default":
        choice = "validation" if layout == "motionsense" else "test"
    return set(splits[choice])


def _subjects(text: str) -> set[int] | str | None:
    """``"2,4,9"`` -> {2, 4, 9}; a split name (or ``default``) as it is; ``"all"`` -> None."""
    name = text.strip().lower()
    if name == "all":
        return None
    if name in SPLIT_NAMES:
        return name
    try:
        subjects = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        subjects = set()
    if not subjects or not all(1 <= s <= 30 for s in subjects):
        raise argparse.ArgumentTypeError(
            f"expected subject ids in 1..30 separated by commas (e.g. 2,4,9), "
            f"train, validation, test or all, got {text!r}"
        )
    return subjects
