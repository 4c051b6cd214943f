"""``harstream serve``: run the engine, PULL ingest and PUB predictions (or, with ``--join``, behind a router).

Every default is read from :class:`~harstream.serve.config.ServerConfig` or
:class:`~harstream.serve.run.ModelSettings`, never written here
(``tests/test_cli_defaults.py`` checks it).

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["--ingest-hwm", "50"])
>>> server_config(args).ingest_hwm, server_config(args).max_batch == ServerConfig().max_batch
(50, True)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from harstream.cli.args import add_bind_endpoints, add_model_arg, endpoint, float_in, int_in
from harstream.cli.security_args import add_server_key_arguments, server_security_from_args
from harstream.errors import HarstreamError, SecurityError
from harstream.serve.config import ServerConfig
from harstream.serve.run import ModelSettings
from harstream.serve.security import ClientSecurity, ServerSecurity

NAME = "serve"
HELP = "run the engine: PULL ingest, PUB predictions"

_CONFIG = ServerConfig()
_MODEL = ModelSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``harstream serve``."""
    parser.description = (
        "Run the engine: producers PUSH chunks to the ingest endpoint, subscribers "
        "SUB to the publish endpoint. Every limit below is published in $stats under 'limits'; "
        "input beyond a limit is refused or shed and reported on $error, never silently."
    )
    add_bind_endpoints(parser, _CONFIG.ingest, _CONFIG.publish, "PUB")
    _add_join_options(parser.add_argument_group(
        "cluster", "join a `harstream router` instead of binding --ingest and --publish (see docs/scaling.md)"))
    add_model_arg(parser)
    parser.add_argument("--max-batch", type=int_in(1, 4096), default=_CONFIG.max_batch,
                        help="most windows per model call, 1-4096 (default: %(default)s)")
    _add_model_options(parser)
    parser.add_argument("--idle-timeout", type=float_in(5.0, 86400.0), default=_CONFIG.idle_timeout_s,
                        help="forget streams silent for this many seconds, 5-86400; a stream that "
                        "comes back later starts afresh (default: %(default)g)")
    _add_limits(parser.add_argument_group("resource limits"))
    add_server_key_arguments(parser)


def _add_join_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--join", default=_CONFIG.join, type=endpoint, metavar="ENDPOINT",
                       help="the router's engines endpoint, e.g. tcp://router:5557: connect to it (DEALER) "
                       "and publish to the results endpoint it names, instead of binding --ingest and --publish")
    group.add_argument("--slot", type=int_in(0, 65535), default=_CONFIG.slot, action=_NeedsJoin,
                       help="with --join: which engine of the cluster this is, 0..N-1; the router hashes "
                       "streams over slots, so a restarted engine gets its streams back (default: %(default)s)")
    group.add_argument("--join-hwm", type=int_in(1, 10_000_000), default=_CONFIG.join_hwm, action=_NeedsJoin,
                       help="with --join: ZeroMQ receive high-water mark, messages from the router "
                       "(all its streams share the one connection; default: %(default)s)")
    group.add_argument("--router-key", type=Path, default=None, metavar="FILE",
                       help="with --join and --server-key: the router's public key file (NAME.key); the "
                       "engine connects as a CURVE client with the key pair of --server-key, and the "
                       "router admits producers and subscribers (no --allow-* options)")


class _NeedsJoin(argparse.Action):
    """Store the value and note the option as given: it means nothing without ``--join``.

    (A default equal to the config's cannot tell ``--slot 0`` from no ``--slot``.)
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, _GIVEN, [*getattr(namespace, _GIVEN, []), option_string or self.dest])


_GIVEN = "join_options_given"
"""Where :class:`_NeedsJoin` lists the options it saw (not an option itself)."""


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", choices=["auto", "keras", "onnx"], default=_MODEL.runtime,
                        help="inference backend: auto measures Keras and ONNX Runtime at start and "
                        "uses the faster for each batch size (default: %(default)s; both are verified to "
                        "agree within 1e-4)")
    parser.add_argument("--model-threads", type=int_in(1, 64), default=_MODEL.model_threads,
                        help="threads of one model call; the ingest thread needs a core of its own "
                        "(default: %(default)s)")
    parser.add_argument("--model-process", action=argparse.BooleanOptionalAction, default=_MODEL.model_process,
                        help="run the model in a process of its own: the serving thread hands it batches "
                        "and goes on receiving and filtering while it computes (default: on; "
                        "--no-model-process classifies on an inference thread in this process, sharing "
                        "its GIL)")
    parser.add_argument("--model-processes", type=int_in(1, 16), default=_MODEL.model_processes, metavar="N",
                        help="with --model-process: this many model processes, each taking the next batch "
                        "when free; answers are published in the order the batches were submitted "
                        "(default: %(default)s; each holds its own copy of the model, about 800 MB)")
    parser.add_argument("--stay", type=float_in(0.0, 1.0, open_ends=True), default=_MODEL.stay,
                        help="smoother: probability the activity is unchanged between windows, "
                        "strictly between 0 and 1 (default: %(default)s)")


def _add_limits(limits: argparse._ArgumentGroup) -> None:
    limits.add_argument("--max-streams", type=int_in(1, 1_000_000), default=_CONFIG.max_streams,
                        help="streams held at once; a chunk opening one more gets $error "
                        "too_many_streams (default: %(default)s, about 12 KB each)")
    limits.add_argument("--max-queued-samples", type=int_in(3000, 100_000_000),
                        default=_CONFIG.max_queued_samples,
                        help="samples received but not yet filtered; beyond it chunks are shed "
                        "with $error overloaded (default: %(default)s, about 24 MB)")
    limits.add_argument("--max-pending-windows", type=int_in(1, 1_000_000), default=_CONFIG.max_pending_windows,
                        help="windows cut and waiting for the model; beyond it, "
                        "filtering pauses and samples wait in the ingest queue (default: %(default)s)")
    limits.add_argument("--turn-samples", type=int_in(3000, 10_000_000), default=_CONFIG.turn_samples,
                        help="most samples filtered per loop turn, which keeps $stats on time "
                        "under load (default: %(default)s)")
    limits.add_argument("--ingest-hwm", type=int_in(1, 1_000_000), default=_CONFIG.ingest_hwm,
                        help="ZeroMQ receive high-water mark, messages per producer connection "
                        "(default: %(default)s)")
    limits.add_argument("--publish-hwm", type=int_in(1, 10_000_000), default=_CONFIG.publish_hwm,
                        help="ZeroMQ send high-water mark, messages per subscriber; a subscriber "
                        "further behind loses messages (default: %(default)s)")
    limits.add_argument("--gather", type=float_in(0.0, 100.0), default=_CONFIG.gather_ms, metavar="MS",
                        help="shortest time between two reads of the ingest socket while nothing "
                        "can be filtered now: arrivals gather, and a turn filters more chunks at "
                        "once for less CPU, each waiting at most this much longer; a lone stream "
                        "waits nothing (default: %(default)g; 0: read each arrival at once)")
    limits.add_argument("--switch-interval", type=float_in(0.1, 1000.0), default=_CONFIG.switch_interval_ms,
                        metavar="MS",
                        help="the interpreter's thread switch interval while serving, ms: with "
                        "--no-model-process the ingest and inference threads share one GIL (default: "
                        "%(default)g; Python's own is 5)")
    limits.add_argument("--flush", type=float_in(0.0, 60.0), default=_CONFIG.flush_s,
                        help="on SIGINT/SIGTERM: seconds spent classifying and publishing what "
                        "is still held before exiting (default: %(default)g)")


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The :class:`ServerConfig` of parsed ``serve`` options."""
    return ServerConfig(
        ingest=args.ingest, publish=args.publish, join=args.join, slot=args.slot, join_hwm=args.join_hwm,
        max_batch=args.max_batch,
        max_pending_windows=args.max_pending_windows, idle_timeout_s=args.idle_timeout,
        max_streams=args.max_streams, max_queued_samples=args.max_queued_samples,
        turn_samples=args.turn_samples, ingest_hwm=args.ingest_hwm, publish_hwm=args.publish_hwm,
        flush_s=args.flush, switch_interval_ms=args.switch_interval, gather_ms=args.gather,
    )


def check_join_options(args: argparse.Namespace) -> None:
    """Refuse ``--slot`` or ``--join-hwm`` without ``--join`` (they would be ignored).

    ``cluster up`` checks its engines' options itself: it sets ``--join`` for each engine.

    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> check_join_options(parser.parse_args(["--join", "tcp://r:5557", "--slot", "2"]))
    >>> check_join_options(parser.parse_args(["--slot", "2"]))
    Traceback (most recent call last):
    ...
    harstream.errors.HarstreamError: --slot needs --join: it is for an engine that joins a router (expected \
--join ENDPOINT as well; without it the engine binds --ingest and --publish itself)
    """
    given = getattr(args, _GIVEN, [])
    if given and args.join is None:
        raise HarstreamError(f"{given[0]} needs --join: it is for an engine that joins a router (expected "
                             "--join ENDPOINT as well; without it the engine binds --ingest and --publish itself)")


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; 0 once stopped cleanly."""
    import logging

    from harstream.serve.run import run_server

    check_join_options(args)
    if args.model_processes > 1 and not args.model_process:
        raise HarstreamError(f"--model-processes {args.model_processes}: expected --model-process (the "
                             "default); --no-model-process classifies on one thread in this process")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = ModelSettings(model=args.model, runtime=args.runtime, model_threads=args.model_threads,
                             model_process=args.model_process, model_processes=args.model_processes,
                             stay=args.stay)
    err = Console(stderr=True)
    run_server(server_config(args), settings, _security(args),
               say=lambda text: err.print(text, highlight=False, markup=False), status=err.status)
    return 0


def _security(args: argparse.Namespace) -> ServerSecurity | ClientSecurity | None:
    """The engine's keys: a CURVE server's when bound, the router's client's with ``--join``."""
    if args.join is None:
        if args.router_key is not None:
            raise SecurityError("--router-key is for an engine that joins a router: expected --join as well")
        return server_security_from_args(args)
    if args.allow_producers or args.allow_subscribers:
        raise SecurityError("--allow-producers/--allow-subscribers: with --join the router admits producers "
                            "and subscribers; give the engine --server-key (its key pair) and --router-key")
    if (args.server_key is None) != (args.router_key is None):
        given, missing = ("--server-key", "--router-key") if args.router_key is None else ("--router-key",
                                                                                           "--server-key")
        raise SecurityError(f"{given} needs {missing} as well with --join: the engine's key pair "
                            "(--server-key) and the router's public key (--router-key)")
    if args.server_key is None:
        return None
    security = ClientSecurity(args.server_key, args.router_key)
    security.load()
    return security
