"""The ``harstream`` command: one verb per job, one module per verb.

serve · router · cluster · web · replay · record · dashboard · demo · train · evaluate · export · bench · data
· keys

A verb is a module with ``NAME``, ``HELP`` (its line in ``harstream --help``),
``add_arguments(parser)`` and ``run(args) -> int`` (:class:`Verb`). Most live
in :mod:`harstream.cli`; ``replay``, ``train`` and ``evaluate`` plug in from
the ``replay`` and ``training`` packages through the ``harstream.verbs``
entry points (pyproject.toml), so harstream never imports them.

Only the verb on the command line adds its options, and every verb keeps
its heavy imports (numpy, TensorFlow, ZeroMQ) inside ``run``: ``harstream
--help`` and ``harstream serve --help`` import none of them.

>>> [verb.NAME for verb in verbs()][:5]
['serve', 'router', 'cluster', 'web', 'replay']
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import functools
import signal
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Protocol

from rich.console import Console
from rich.markup import escape

from harstream import __version__
from harstream.cli import bench, cluster, dashboard, data, demo, export, keys, record, router, serve, web
from harstream.errors import HarstreamError

ORDER = ("serve", "router", "cluster", "web", "replay", "record", "dashboard", "demo", "train", "evaluate",
         "export", "bench", "data", "keys")
"""The verbs in the order ``harstream --help`` lists them (verbs other packages add come after)."""
ENTRY_POINTS = "harstream.verbs"
"""The entry-point group through which ``replay`` and ``training`` add their verbs."""
PLUGGED_IN = ("replay", "train", "evaluate")
"""The verbs expected from :data:`ENTRY_POINTS`."""

_err = Console(stderr=True)


class Verb(Protocol):
    """What a verb module defines: ``NAME``, ``HELP`` and the two functions."""

    @property
    def NAME(self) -> str: ...

    @property
    def HELP(self) -> str: ...

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True)
class _Missing:
    """A verb expected from an entry point that is not there: listed, and explained when called."""

    NAME: str
    reason: str
    HELP: str = "(not installed: reinstall with `pip install -e .`)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise HarstreamError(self.problem())

    def problem(self) -> str:
        return (f"the {self.NAME} verb is not installed: {self.reason}; reinstall harstream "
                "(`pip install -e .` in the repository) so that its entry point registers")


@functools.cache
def verbs() -> tuple[Verb, ...]:
    """Every verb, in :data:`ORDER`: the built-in ones and those of the entry points."""
    table: dict[str, Verb] = {module.NAME: module for module in (serve, router, cluster, record, dashboard, demo,
                                                                  export, bench, data, keys, web)}
    for point in entry_points(group=ENTRY_POINTS):
        if point.name not in table:
            table[point.name] = _load(point.name, point.value)
    for name in PLUGGED_IN:
        table.setdefault(name, _Missing(name, f"no {ENTRY_POINTS!r} entry point named {name!r}"))
    order = {name: index for index, name in enumerate(ORDER)}
    return tuple(sorted(table.values(), key=lambda verb: (order.get(verb.NAME, len(ORDER)), verb.NAME)))


def _load(name: str, module_name: str) -> Verb:
    """The verb module of an entry point, or a :class:`_Missing` saying why it is not there."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
            raise  # the module is there and imports something missing: a bug to show, not hide
        return _Missing(name, f"its module {module_name} is not found")
    lacking = [attr for attr in ("NAME", "HELP", "add_arguments", "run") if not hasattr(module, attr)]
    if lacking:
        return _Missing(name, f"its module {module_name} lacks {', '.join(lacking)}")
    verb: Verb = module  # the four names are there (checked just above)
    return verb


def build_parser(only: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; the options of the verbs in ``only`` (default: of every verb)."""
    parser = argparse.ArgumentParser(
        prog="harstream",
        description="Streaming real-time human activity recognition over ZeroMQ.",
    )
    parser.add_argument("--version", action="version", version=f"harstream {__version__}")
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in verbs():
        verb_parser = subparsers.add_parser(verb.NAME, help=verb.HELP)
        if only is None or verb.NAME in only:
            verb.add_arguments(verb_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``harstream`` command.

    ``kill -USR1 PID`` makes any verb write every thread's stack to stderr (diagnosing a hang).
    """
    if hasattr(signal, "SIGUSR1"):
        with contextlib.suppress(ValueError, OSError, AttributeError):  # stderr without a descriptor
            faulthandler.register(signal.SIGUSR1, all_threads=True)
    argv = sys.argv[1:] if argv is None else list(argv)
    # the first word that is not an option names the verb: the top level's options take no value
    name = next((word for word in argv if not word.startswith("-")), None)
    by_name = {verb.NAME: verb for verb in verbs()}
    chosen = by_name.get(name) if name is not None else None
    if isinstance(chosen, _Missing):
        _err.print(f"[red]error:[/] {escape(chosen.problem())}", highlight=False)
        return 2
    args = build_parser(() if name is None else (name,)).parse_args(argv)
    try:
        return by_name[args.verb].run(args)
    except HarstreamError as exc:
        _err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        _err.print("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
