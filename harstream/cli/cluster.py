"""``harstream cluster up | scale N | status | down``: engines on Ray behind one router.

Needs the ``cluster`` extra (``pip install harstream[cluster]``: Ray). ``up`` starts a
local Ray head (or joins ``--address``), a controller actor, the router on this machine
and ``--engines`` engine actors spread over Ray's nodes; the other actions find them by
name. Every default is read from :class:`~harstream.cluster.ray_config.ClusterConfig`,
:class:`~harstream.cluster.config.RouterConfig`; the engines take ``serve``'s options (after ``--``).

>>> parser = argparse.ArgumentParser()
>>> add_arguments(parser)
>>> args = parser.parse_args(["up", "--engines", "3", "--", "--runtime", "onnx"])
>>> args.action, cluster_config(args).engines, serve_options(args.serve_options).runtime
('up', 3, 'onnx')
>>> parser.parse_args(["scale", "5"]).count
5
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from harstream.cli import serve
from harstream.cli.args import endpoint, float_in, int_in, print_json
from harstream.cli.security_args import add_server_key_arguments, server_security_from_args
from harstream.cluster.config import RouterConfig
from harstream.cluster.ray_config import MAX_ENGINES, ClusterConfig
from harstream.errors import HarstreamError, SecurityError
from harstream.serve.run import ModelSettings
from harstream.serve.security import PUBLIC_SUFFIX, SECRET_SUFFIX

if TYPE_CHECKING:
    from harstream.cluster.ray_controller import ClusterPlan
    from harstream.cluster.security import RouterSecurity
    from harstream.serve.security import ClientSecurity

NAME = "cluster"
HELP = "run engines on Ray behind one router: up, scale N, status, down (extra: cluster)"

_CLUSTER = ClusterConfig()
_ROUTER = RouterConfig()


def _port(endpoint_text: str) -> int:
    return int(endpoint_text.rsplit(":", 1)[1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The actions of ``harstream cluster`` and their options."""
    parser.description = (
        "Engines managed by Ray behind one router (docs/scaling.md): producers and subscribers keep one "
        "address each, Ray restarts an engine that dies, and `scale` adds or removes engines. Needs "
        "`pip install harstream[cluster]`."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start Ray (or join --address), the router here and N engines",
                            description="Start a local Ray head (or join --address), then the controller, "
                            "the router on this machine and --engines engines, spread over Ray's nodes. "
                            "The engine options are serve's.")
    _add_address(up)
    up.add_argument("--engines", type=int_in(1, MAX_ENGINES), default=_CLUSTER.engines, metavar="N",
                    help="engines to start (default: %(default)s)")
    up.add_argument("--engine-cpus", type=float_in(0.0, 1024.0), default=_CLUSTER.engine_cpus,
                    help="Ray CPUs each engine reserves: a node runs at most its CPUs / this many engines "
                    "(default: %(default)g; 0: no limit)")
    up.add_argument("--ready-timeout", type=float_in(1.0, 86400.0), default=_CLUSTER.ready_timeout_s,
                    metavar="S", help="longest wait for an engine to load its model and join "
                    "(default: %(default)g)")
    up.add_argument("--engines-port", type=int_in(1, 65535), default=_port(_ROUTER.engines),
                    help="port of the router's engines endpoint, on this machine's Ray address "
                    "(default: %(default)s)")
    up.add_argument("--results-port", type=int_in(1, 65535), default=_port(_ROUTER.results),
                    help="port of the router's results endpoint, on this machine's Ray address "
                    "(default: %(default)s)")
    up.add_argument("--ingest", default=_ROUTER.ingest, type=endpoint,
                    help=f"the router's endpoint for producers (PULL; default {_ROUTER.ingest})")
    up.add_argument("--publish", default=_ROUTER.publish, type=endpoint,
                    help=f"the router's endpoint for subscribers (XPUB; default {_ROUTER.publish})")
    add_server_key_arguments(up, owner="the router's", sockets="all the router's sockets; off unless these "
                             "three options and --engine-key are all given")
    up.add_argument("--engine-key", type=Path, default=None, metavar="FILE",
                    help=f"with the access-control options: the engines' secret key file (NAME{SECRET_SUFFIX}); "
                    f"engines join with it and the router's NAME{PUBLIC_SUFFIX} beside --server-key, and the "
                    f"router admits the NAME{PUBLIC_SUFFIX} beside it (the files must be at these paths on "
                    "every node)")
    up.add_argument("serve_options", nargs=argparse.REMAINDER, metavar="-- SERVE_OPTIONS",
                    help="after --: each engine's options, as `harstream serve` takes them (model, runtime, "
                    "limits; see `harstream serve --help`), e.g. -- --runtime onnx --max-streams 5000")
    scale = actions.add_parser("scale", help="add or remove engines (removed ones stop cleanly)")
    scale.add_argument("count", type=int_in(0, MAX_ENGINES), metavar="N", help="engines to have")
    _add_address(scale)
    status = actions.add_parser("status", help="Ray's view of the actors and nodes, and the router's $stats")
    _add_address(status)
    status.add_argument("--json", action="store_true", help="print the whole status as JSON")
    down = actions.add_parser("down", help="stop the engines (cleanly), the router, the controller; and the "
                              "local Ray head if `up` started it")
    _add_address(down)


def _add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=_CLUSTER.address, metavar="RAY_ADDRESS",
                        help="a running Ray cluster (auto, HOST:6379); default: up starts a local head, "
                        "the other actions use the one running on this machine")


def cluster_config(args: argparse.Namespace) -> ClusterConfig:
    """The :class:`ClusterConfig` of parsed ``cluster`` options."""
    if args.action != "up":
        return ClusterConfig(address=args.address)
    return ClusterConfig(engines=args.engines, address=args.address, engine_cpus=args.engine_cpus,
                         ready_timeout_s=args.ready_timeout)


_SET_BY_THE_CLUSTER = ("--join", "--slot", "--ingest", "--publish", "--server-key", "--router-key",
                       "--allow-producers", "--allow-subscribers")


def serve_options(words: list[str]) -> argparse.Namespace:
    """The engines' options (the words after ``--``), parsed as ``harstream serve`` parses them.

    >>> serve_options(["--", "--runtime", "onnx"]).runtime
    'onnx'
    >>> serve_options(["--slot", "2"])
    Traceback (most recent call last):
    ...
    harstream.errors.HarstreamError: engine option --slot: set by the cluster for each engine (...)
    """
    words = words[1:] if words[:1] == ["--"] else words
    for word in words:
        if word.split("=", 1)[0] in _SET_BY_THE_CLUSTER:
            raise HarstreamError(f"engine option {word.split('=', 1)[0]}: set by the cluster for each engine "
                                 "(the router's endpoints and keys are `cluster up` options)")
    parser = argparse.ArgumentParser(prog="harstream cluster up ... --", add_help=False)
    serve.add_arguments(parser)
    return parser.parse_args(words)


def _plan(args: argparse.Namespace) -> ClusterPlan:
    from harstream.cluster.ray_controller import ClusterPlan
    from harstream.cluster.ray_router import RouterSpec

    options = serve_options(args.serve_options)
    if options.model_processes > 1 and not options.model_process:
        raise HarstreamError(f"--model-processes {options.model_processes}: expected --model-process (the "
                             "default)")
    router = RouterConfig(ingest=args.ingest, publish=args.publish,
                          engines=f"tcp://127.0.0.1:{args.engines_port}",
                          results=f"tcp://127.0.0.1:{args.results_port}")
    model = ModelSettings(model=options.model, runtime=options.runtime, model_threads=options.model_threads,
                          model_process=options.model_process, model_processes=options.model_processes,
                          stay=options.stay)
    router_keys, engine_keys = _keys(args)
    return ClusterPlan(cluster=cluster_config(args), router=RouterSpec(router, security=router_keys),
                       node_id="", server=serve.server_config(options), model=model, security=engine_keys)


def _keys(args: argparse.Namespace) -> tuple[RouterSecurity | None, ClientSecurity | None]:
    """The router's keys (its pair, the producers' and subscribers' allow-lists, and the engines' public
    key as the engines' allow-list) and the engines' (their pair and the router's public key beside its
    secret one); (None, None) without key options. Key files are checked now."""
    from harstream.cluster.security import RouterSecurity
    from harstream.serve.security import ClientSecurity

    server = server_security_from_args(args)
    if args.engine_key is None and server is None:
        return None, None
    if args.engine_key is None or server is None:
        given, missing = ("--engine-key", "--server-key") if server is None else ("--server-key", "--engine-key")
        raise SecurityError(f"{given} needs {missing} as well: engines and router both hold keys")
    engine_public = _public(args.engine_key)
    router = RouterSecurity(server, engines=(engine_public,))
    router.engine_keys()
    engines = ClientSecurity(args.engine_key, _public(args.server_key))
    engines.load()
    return router, engines


def _public(secret: Path) -> Path:
    """The public key file beside a secret one (``NAME.key_secret`` -> ``NAME.key``)."""
    if not secret.name.endswith(SECRET_SUFFIX):
        raise SecurityError(f"{secret}: expected a secret key file named NAME{SECRET_SUFFIX}, with its "
                            f"NAME{PUBLIC_SUFFIX} beside it")
    return secret.with_name(secret.name.removesuffix(SECRET_SUFFIX) + PUBLIC_SUFFIX)


def run(args: argparse.Namespace) -> int:
    """Run the action; 0 once done."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise HarstreamError("`harstream cluster` needs Ray, which is not installed: "
                             "pip install 'harstream[cluster]'")
    from harstream.cluster import ray_control

    err = Console(stderr=True)

    def say(text: str) -> None:
        err.print(escape(text), highlight=False)

    if args.action == "up":
        described = ray_control.up(_plan(args), say=say)
        _print_described(described)
    elif args.action == "scale":
        _print_described(ray_control.scale(args.count, cluster_config(args), say=say))
    elif args.action == "status":
        state = ray_control.status(cluster_config(args))
        if args.json:
            print_json(state)
        else:
            _print_status(state)
    else:
        report = ray_control.down(cluster_config(args), say=say)
        stopped = ", ".join(f"slot {e['slot']} {e['state']}" for e in report.get("engines", []))
        say(f"down: engines {stopped or 'none'}; router {report.get('router', {}).get('state', '?')}"
            + ("; local Ray head stopped" if report.get("head_stopped") else ""))
    return 0


def _print_described(described: dict[str, Any]) -> None:
    out = Console()
    router = described["router"]
    out.print(f"router on {router['host']} (pid {router['pid']}, {router['state']}): ingest {router['ingest']}, "
              f"publish {router['publish']}; engines join {router['engines']}", highlight=False)
    for engine in described["engines"]:
        out.print(f"  engine slot {engine['slot']}: {engine['state']} on {engine.get('host', '?')} "
                  f"(pid {engine.get('pid', '?')})" + (f": {engine['error']}" if engine.get("error") else ""),
                  highlight=False, markup=False)


def _print_status(state: dict[str, Any]) -> None:
    from rich.table import Table

    _print_described(state)
    out = Console()
    actors = state["actors"]
    if isinstance(actors, str):
        out.print(f"Ray actors: {actors}", highlight=False, markup=False)
    else:
        table = Table("actor", "state", "restarts", "pid", "node", title="Ray's view")
        for actor in actors:
            table.add_row(actor["name"] or actor["class"], actor["state"], str(actor["restarts"]),
                          str(actor["pid"]), str(actor["node_id"])[:12])
        out.print(table)
    nodes = ", ".join(f"{n['address']} ({'alive' if n['alive'] else 'dead'}, {n['cpus']:g} CPUs)"
                      for n in state["nodes"])
    out.print(f"nodes: {nodes}", highlight=False, markup=False)
    stats = state.get("stats")
    if not stats:
        out.print("router $stats: none yet", highlight=False)
        return
    table = Table("slot", "incarnation", "host", "pid", "streams", "windows/s", "p99 ms",
                  title=f"router $stats: {stats.get('streams')} streams, {stats.get('windows_per_s')} windows/s")
    for row in stats.get("engines", []):
        latency = row.get("latency_ms") or {}
        values = (row.get("slot"), str(row.get("incarnation"))[:8], row.get("host"), row.get("pid"),
                  row.get("streams"), row.get("windows_per_s"), latency.get("p99"))
        table.add_row(*(_cell(value) for value in values))
    out.print(table)


def _cell(value: Any) -> str:
    """A table cell: ``-`` for a figure not known yet."""
    return "-" if value is None else str(value)
