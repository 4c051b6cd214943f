"""The ``harstream`` command line: one module per verb, plug-in verbs, cheap help, checked options."""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

from harstream.cli import main as cli
from harstream.cli.args import endpoint, float_in, int_in, int_list, speed

HEAVY = ("numpy", "tensorflow", "keras", "zmq")
"""Modules ``harstream --help`` and ``harstream serve --help`` must not import."""


def _imported_by_help(*argv: str) -> list[str]:
    code = (
        "import sys\n"
        "from harstream.cli.main import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(set({HEAVY!r}) & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return list(eval(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [("--help",), ("serve", "--help"), ("dashboard", "--help"), ("keys", "--help")])
def test_help_imports_nothing_heavy(argv: tuple[str, ...]) -> None:
    assert _imported_by_help(*argv) == []


def test_python_m_harstream_lists_every_verb_in_order() -> None:
    out = subprocess.run([sys.executable, "-m", "harstream", "--help"], capture_output=True, text=True,
                         check=True).stdout
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()]
    verbs = [name for name in listed if name in cli.ORDER]
    assert verbs == list(cli.ORDER)
    assert "not installed" not in out  # every verb of training and replay registered


def test_every_verb_module_has_the_four_names() -> None:
    names = [verb.NAME for verb in cli.verbs()]
    assert names == list(cli.ORDER)
    for verb in cli.verbs():
        assert isinstance(verb.HELP, str) and verb.HELP
        assert callable(verb.add_arguments) and callable(verb.run)
        assert not isinstance(verb, cli._Missing), f"{verb.NAME}: {verb.reason}"


def test_training_and_replay_plug_in_through_entry_points() -> None:
    registered = {point.name: point.value for point in entry_points(group=cli.ENTRY_POINTS)}
    assert registered == {"replay": "replay.cli", "train": "training.cli.train",
                          "evaluate": "training.cli.evaluate"}
    for name, module in registered.items():
        assert name == importlib.import_module(module).NAME


@pytest.fixture
def fresh_verbs() -> Iterator[None]:
    cli.verbs.cache_clear()
    yield
    cli.verbs.cache_clear()


def test_a_missing_verb_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_verbs: None, tmp_path: Path
) -> None:
    points = [EntryPoint("replay", "replay.cli", cli.ENTRY_POINTS),
              EntryPoint("train", "training.cli.no_such_module", cli.ENTRY_POINTS)]
    monkeypatch.setattr(cli, "entry_points", lambda group: [p for p in points if p.group == group])
    assert [verb.NAME for verb in cli.verbs()] == list(cli.ORDER)  # still listed, in order
    assert cli.main(["train", "--out", "x"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the train verb is not installed" in err and "training.cli.no_such_module is not found" in err
    assert "pip install -e ." in err
    assert cli.main(["evaluate"]) == 2
    assert "no 'harstream.verbs' entry point named 'evaluate'" in " ".join(capsys.readouterr().err.split())
    assert cli.main(["keys", "new", "k", "--dir", str(tmp_path)]) == 0  # the other verbs work


def test_main_builds_only_the_chosen_verbs_options(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = cli.build_parser

    def spy(only: object = None) -> argparse.ArgumentParser:
        built.append(repr(only))
        return real(only)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "build_parser", spy)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    with pytest.raises(SystemExit):
        cli.main(["keys", "--help"])
    assert built == ["()", "('keys',)"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--speed", "-1"], "expected a number >= 0"),
        (["--speed", "nan"], "expected a number >= 0"),
        (["--ingest", "localhost:5555"], "expected an endpoint tcp://HOST:PORT"),
        (["--publish", "tcp://127.0.0.1:99999"], "expected an endpoint tcp://HOST:PORT"),
    ],
)
def test_demo_options_are_checked(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser(("demo",)).parse_args(["demo", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_shared_argument_types() -> None:
    assert int_in(1, 3)("3") == 3 and int_in(1)("1000000") == 1_000_000
    assert float_in(0.0, 1.0, open_ends=True)("0.5") == 0.5
    assert int_list(1, 10)("1,2") == [1, 2] and speed("2.5") == 2.5
    assert endpoint("tcp://[::1]:5555") == "tcp://[::1]:5555" and endpoint("ipc:///tmp/x") == "ipc:///tmp/x"
    for parse, text, message in [
        (int_in(1, 3), "4", "expected an integer in [1, 3], got 4"),
        (int_in(1), "0", "expected an integer >= 1, got 0"),
        (int_in(1), "x", "expected an integer, got 'x'"),
        (float_in(0.0, 1.0, open_ends=True), "1", "expected a number in (0, 1), got 1"),
        (float_in(0.0, 10.0), "inf", "expected a number in [0, 10], got inf"),
        (int_list(1, 10), ",", "expected comma-separated integers, got ','"),
        (speed, "inf", "expected a number >= 0 (times real time; 0 = unpaced), got 'inf'"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
            parse(text)


def test_the_bench_report_renders_a_stored_report() -> None:
    import io
    import json

    from rich.console import Console

    from harstream.tools.bench.report import print_bench

    report = json.loads((Path(__file__).resolve().parents[1] / "docs" / "bench-2026-12-02e.json").read_text())
    out = io.StringIO()
    print_bench(report, Console(file=out, width=200))
    text = out.getvalue()
    assert "windows/s" in text and "live path over loopback" in text and "target streams_4000" in text
