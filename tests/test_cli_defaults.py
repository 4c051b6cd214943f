"""One source of truth for every default: each option's default is its config field's.

A default written twice (in an option and in its config) fails here as soon
as the two differ; an option or a config field added without its counterpart
fails too, until it is mapped below.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from harstream.cli.main import build_parser
from harstream.cluster.config import RouterConfig
from harstream.serve.config import ServerConfig
from harstream.serve.run import ModelSettings

ROOT = Path(__file__).resolve().parents[1]

SERVE_FIELD = {"idle_timeout": "idle_timeout_s", "flush": "flush_s", "switch_interval": "switch_interval_ms",
               "gather": "gather_ms"}
"""``serve`` options whose :class:`ServerConfig` field has another name (the unit in it)."""
SERVE_KEY_OPTIONS = {"server_key", "allow_producers", "allow_subscribers", "router_key"}
"""``serve`` options with no config field: the access-control keys, off by default."""
NOT_OPTIONS = {"max_drain", "max_message_bytes", "stats_interval_s"}
""":class:`ServerConfig` fields ``serve`` does not expose (docs/protocol.md, "Limits": "—")."""


def _options(verb: str) -> dict[str, argparse.Action]:
    """The options of ``harstream VERB`` by destination, help left out."""
    parser = build_parser((verb,))
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {action.dest: action for action in verbs.choices[verb]._actions if action.dest != "help"}


def test_every_serve_default_is_its_config_field() -> None:
    config, model = ServerConfig(), ModelSettings()
    config_fields = {f.name for f in fields(ServerConfig)}
    model_fields = {f.name for f in fields(ModelSettings)}
    exposed = set()
    for dest, action in _options("serve").items():
        name = SERVE_FIELD.get(dest, dest)
        if name in config_fields:
            expected: Any = getattr(config, name)
            exposed.add(name)
        elif name in model_fields:
            expected = getattr(model, name)
        else:
            assert dest in SERVE_KEY_OPTIONS, f"serve --{dest.replace('_', '-')}: no config field to read from"
            expected = None
        assert action.default == expected, f"serve --{dest.replace('_', '-')}: {action.default!r} != {expected!r}"
    assert config_fields - exposed == NOT_OPTIONS
    assert model_fields <= set(_options("serve"))


ROUTER_FIELD = {"heartbeat": "heartbeat_ms", "timeout": "timeout_ms", "idle_timeout": "idle_timeout_s"}
"""``router`` options whose :class:`RouterConfig` field has another name (the unit in it)."""
ROUTER_NOT_OPTIONS = {"stats_interval_s", "max_drain", "max_message_bytes"}
""":class:`RouterConfig` fields ``router`` does not expose."""
ROUTER_KEY_OPTIONS = {"server_key", "allow_producers", "allow_subscribers", "allow_engines"}
"""``router`` options with no config field: the access-control keys, off by default."""


def test_every_router_default_is_its_config_field() -> None:
    import harstream

    config = RouterConfig()
    config_fields = {f.name for f in fields(RouterConfig)}
    exposed = set()
    for dest, action in _options("router").items():
        if dest in ROUTER_KEY_OPTIONS:
            assert action.default is None, f"router --{dest.replace('_', '-')}: keys are off by default"
            continue
        name = ROUTER_FIELD.get(dest, dest)
        assert name in config_fields, f"router --{dest.replace('_', '-')}: no config field to read from"
        assert action.default == getattr(config, name), f"router --{dest.replace('_', '-')}: {action.default!r}"
        exposed.add(name)
    assert config_fields - exposed == ROUTER_NOT_OPTIONS
    assert (config.ingest, config.publish) == (harstream.DEFAULT_INGEST, harstream.DEFAULT_PUBLISH)


def test_model_settings_agree_with_the_model_and_the_smoother() -> None:
    from harstream.model.classifier import RUNTIMES
    from harstream.signal.smoothing import DEFAULT_STAY

    assert ModelSettings().stay == DEFAULT_STAY
    assert tuple(_options("serve")["runtime"].choices or ()) == RUNTIMES
    assert _options("bench")["model_threads"].default == ModelSettings().model_threads


def test_clients_default_to_the_engines_endpoints() -> None:
    import harstream
    from harstream.tools.dashboard.app import DEFAULT_CONNECT
    from harstream.tools.record import DEFAULT_LISTEN

    config = ServerConfig()
    assert (config.ingest, config.publish) == (harstream.DEFAULT_INGEST, harstream.DEFAULT_PUBLISH)
    demo = _options("demo")
    assert (demo["ingest"].default, demo["publish"].default) == (config.ingest, config.publish)
    assert _options("record")["engine"].default == config.ingest
    assert _options("record")["listen"].default == DEFAULT_LISTEN
    assert _options("dashboard")["connect"].default == DEFAULT_CONNECT == config.publish
    replay = _options("replay")
    assert (replay["endpoint"].default, replay["connect"].default) == (config.ingest, config.publish)


def test_the_protocol_doc_states_the_served_limits() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \| (?:`--[a-z-]+`|—) \| ([0-9,.]+)", text, flags=re.MULTILINE)
    documented = {key: float(value.replace(",", "")) for key, value in rows}
    assert documented == {key: float(value) for key, value in ServerConfig().limits().items()}
    stats_example = re.search(r'"limits":(\{[^}]*\})', text)
    assert stats_example is not None
    assert f'"ingest_hwm":{ServerConfig().ingest_hwm}' in stats_example.group(1).replace(" ", "")


def _stated_default(action: argparse.Action) -> str | None:
    """What an option's help says its default is ("(default: 10, ...)" -> "10"), if it says."""
    match = re.search(r"\(default: ([^;,)]+)", action.help or "")
    return match.group(1).strip() if match else None


def _same(stated: str, value: Any) -> bool:
    try:
        return float(stated) == float(value)
    except (TypeError, ValueError):
        return stated == str(value)


def test_every_train_default_is_the_shipped_recipes() -> None:
    train = pytest.importorskip("training.cli.train", reason="no training/cli/train.py yet")
    from training.recipe import SHIPPED

    recipe = {f.name for f in fields(SHIPPED)}
    options = _options("train")
    compared = sorted(set(options) & recipe)
    assert len(compared) >= 8, f"expected most train options to be recipe fields, found {compared}"
    for dest in compared:
        action, expected = options[dest], getattr(SHIPPED, dest)
        flag = f"train --{dest.replace('_', '-')}"
        if action.default is None and expected is not None:
            # None stands for the recipe's own value (it differs with --base): the help must not
            # state another one
            stated = _stated_default(action)
            assert stated is None or _same(stated, expected), f"{flag}: help says {stated}, SHIPPED {expected!r}"
            continue
        assert action.default == expected, f"{flag}: {action.default!r} != SHIPPED.{dest} {expected!r}"
    if hasattr(train, "train_config"):
        parser = argparse.ArgumentParser()
        train.add_arguments(parser)
        assert train.train_config(parser.parse_args(["--out", "o"])) == SHIPPED
