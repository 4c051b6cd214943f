"""The argument types and options verbs share: checked numbers, endpoints, ``--data``, ``--model``, bindings.

A type turns a bad value into one line (argparse prints it after the option's
name and exits 2). The verbs that plug in from ``training`` and ``replay``
use these too, so an option means the same everywhere.

>>> int_in(1, 4096)("256"), int_in(1)("7"), float_in(0.0, 1.0, open_ends=True)("0.9")
(256, 7, 0.9)
>>> int_list(1, 4096)("1, 32,256")
[1, 32, 256]
>>> endpoint("tcp://127.0.0.1:5555"), endpoint_or_none("none"), speed("0")
('tcp://127.0.0.1:5555', 'none', 0.0)
>>> int_in(1, 4096)("0")
Traceback (most recent call last):
argparse.ArgumentTypeError: expected an integer in [1, 4096], got 0
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harstream.paths import ENV_VAR

__all__ = ["add_bind_endpoints", "add_data_arg", "add_model_arg", "data_dir", "endpoint", "endpoint_or_none",
           "float_in", "int_in", "int_list", "print_json", "speed"]


def print_json(payload: Any) -> None:
    """Write ``payload`` to stdout as indented JSON (what ``--json`` prints)."""
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (no upper bound when ``high`` is None)."""
    interval = f">= {low}" if high is None else f"in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer {interval}, got {value}")
        return value

    return parse


def float_in(low: float, high: float, open_ends: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (or (low, high) with ``open_ends``)."""
    interval = f"({low:g}, {high:g})" if open_ends else f"[{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        inside = low < value < high if open_ends else low <= value <= high
        if not inside or not math.isfinite(value):  # NaN is never inside
            raise argparse.ArgumentTypeError(f"expected a number in {interval}, got {text}")
        return value

    return parse


def int_list(low: int, high: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers, each in [low, high]."""
    one = int_in(low, high)

    def parse(text: str) -> list[int]:
        values = [one(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
        return values

    return parse


def speed(text: str) -> float:
    """An argparse type: a replay speed, times real time, finite and >= 0 (0: as fast as taken)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"expected a number >= 0 (times real time; 0 = unpaced), got {text!r}"
        )
    return value


_ENDPOINT = re.compile(r"tcp://(\*|[A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+(%[A-Za-z0-9_.\-]+)?\]):(\d{1,5}|\*)|ipc://.+")


def endpoint(text: str) -> str:
    """An argparse type: a ZeroMQ endpoint tcp://HOST:PORT (``*`` for any) or ipc://PATH."""
    match = _ENDPOINT.fullmatch(text)
    port = match.group(3) if match else None
    if match is None or (port not in (None, "*") and not 1 <= int(port) <= 65535):
        raise argparse.ArgumentTypeError(
            f"expected an endpoint tcp://HOST:PORT (port 1-65535 or *) or ipc://PATH, got {text!r}"
        )
    return text


def endpoint_or_none(text: str) -> str:
    """An argparse type: an endpoint as :func:`endpoint`, or ``none``."""
    return text if text == "none" else endpoint(text)


def add_data_arg(parser: argparse.ArgumentParser, any_layout: bool = False) -> None:
    """``--data DIR``: a HAPT folder, or with ``any_layout`` HAPT or MotionSense (None: the default one)."""
    what = ("dataset folder: HAPT (holding RawData/) or MotionSense (holding A_DeviceMotion_data/), "
            "told apart by its layout" if any_layout else "HAPT dataset folder (holding RawData/)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"{what}; default: ${ENV_VAR}, else the user cache where `harstream data download` "
        "puts HAPT",
    )


def add_bind_endpoints(parser: argparse.ArgumentParser, ingest: str, publish: str, publish_socket: str) -> None:
    """``--ingest`` and ``--publish``: the endpoints a verb binds for producers and subscribers (an
    engine, or the router in front of engines), ``publish_socket`` the ZeroMQ socket type it binds there.

    >>> parser = argparse.ArgumentParser()
    >>> add_bind_endpoints(parser, "tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556", "PUB")
    >>> parser.parse_args(["--publish", "tcp://*:6000"])
    Namespace(ingest='tcp://127.0.0.1:5555', publish='tcp://*:6000')
    """
    parser.add_argument("--ingest", default=ingest, type=endpoint,
                        help=f"endpoint to bind for producers (PULL; default {ingest})")
    parser.add_argument("--publish", default=publish, type=endpoint,
                        help=f"endpoint to bind for subscribers ({publish_socket}; default {publish})")


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    """``--model PATH``: a model artifact (None: the shipped model)."""
    parser.add_argument(
        "--model", type=Path, default=None,
        help="model artifact (.keras file with its .json beside it, or their folder); "
        "default: the model shipped with harstream",
    )


def data_dir(args: argparse.Namespace) -> Path:
    """The dataset folder of ``--data``: the option, else ``$HARSTREAM_DATA``, else the user cache."""
    from harstream.paths import resolve_data_dir

    return resolve_data_dir(args.data)
