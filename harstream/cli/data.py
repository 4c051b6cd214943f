"""``harstream data``: download, check and count the HAPT and MotionSense datasets.

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["download", "--dataset", "motionsense"])
>>> args.data_verb, args.dataset, args.dest
('download', 'motionsense', None)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from harstream.cli.args import add_data_arg, data_dir, print_json
from harstream.errors import HarstreamError

NAME = "data"
HELP = "download, check and count the HAPT and MotionSense datasets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The actions of ``harstream data`` and their options."""
    actions = parser.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    p = actions.add_parser(
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
    p = actions.add_parser(
        "check", help="validate a dataset folder: layout, parse, checksums",
        description="Validate a HAPT or MotionSense folder. Checksums: HAPT against the package "
        "manifest; MotionSense's project copy (.csv.gz) against its shipped manifest, the official "
        ".csv files by structure and parsing only (no checksums of them are known).",
    )
    add_data_arg(p, any_layout=True)
    p.add_argument("--no-checksums", action="store_true", help="skip the SHA-256 verification")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p = actions.add_parser("stats", help="windows per split and per (subject, activity)")
    add_data_arg(p, any_layout=True)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the action: 0 on success; ``check`` returns 1 when it found problems."""
    actions: dict[str, Callable[[argparse.Namespace], int]] = {
        "download": _download, "check": _check, "stats": _stats,
    }
    return actions[args.data_verb](args)


def _download(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    if args.dataset == "motionsense":
        from harstream.data import motionsense_download

        path = motionsense_download.download(
            args.dest, url=args.url or motionsense_download.DEFAULT_URL, console=err,
            sha256=args.sha256 or motionsense_download.ARCHIVE_SHA256,
        )
    else:
        from harstream.data.download import DEFAULT_URL, download

        if args.sha256:
            raise HarstreamError("--sha256: HAPT's files are checked against the package manifest; "
                                 "expected --sha256 only with --dataset motionsense")
        path = download(args.dest, url=args.url or DEFAULT_URL, console=err)
    err.print(f"[green]dataset ready at {path}[/]")
    return 0


def _check(args: argparse.Namespace) -> int:
    from harstream.data.download import check, print_check
    from harstream.data.layouts import find_layout

    data = data_dir(args)
    if find_layout(data) == "motionsense":  # anything else is checked (and reported) as HAPT
        from harstream.data import motionsense_download

        report: Any = motionsense_download.check(data, checksums=not args.no_checksums)
        show: Callable[[Any, Console], None] = motionsense_download.print_check
    else:
        report, show = check(data, checksums=not args.no_checksums), print_check
    if args.json:
        from dataclasses import asdict

        print_json(asdict(report))
    else:
        show(report, Console())
    return 1 if report.problems else 0


def _stats(args: argparse.Namespace) -> int:
    from harstream.data.stats import print_stats, window_stats

    stats = window_stats(data_dir(args))
    if args.json:
        print_json(stats)
    else:
        print_stats(stats, Console())
    return 0
