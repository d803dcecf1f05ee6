"""Every verb, asked for help or given bad input, answers in one line: never a traceback.

The walk builds the full ``lifeveil`` parser, finds every leaf command (``vault export``,
``server user add``, ...), and for each runs ``main()`` in this process with ``--help``, with an
unknown flag, and, where the command has required arguments, with every required argument set
to a path that cannot exist or be created (its parent is a regular file). Nothing may raise
out of ``main()`` and nothing may print ``Traceback``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from lifeveil.cli.failures import RUNTIME, USAGE, describe_failure
from lifeveil.cli.main import build_parser, main
from lifeveil.errors import InputError


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The named sub-parsers of ``parser`` (none for a leaf)."""
    for action in parser._actions:  # noqa: SLF001  (argparse has no public walk)
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def leaf_commands() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command line prefix and its parser, e.g. (("vault", "export"), p)."""
    found: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = []
    todo = [((), build_parser(load_all=True))]
    while todo:
        words, parser = todo.pop()
        children = _subparsers(parser)
        if not children and words:
            found.append((words, parser))
        todo.extend(((*words, name), child) for name, child in children.items())
    return sorted(found, key=lambda item: item[0])


LEAVES = leaf_commands()
IDS = [" ".join(words) for words, _ in LEAVES]


def _bad_value(action: argparse.Action, nowhere: Path) -> str:
    """A value the parser accepts but no command can use: a path below a regular file."""
    if action.choices:
        return str(next(iter(action.choices)))
    if action.type in (int, float):
        return "1"
    return str(nowhere / "missing")


def _bad_arguments(parser: argparse.ArgumentParser, nowhere: Path) -> list[str] | None:
    """Every required argument set to a bad value; None if the command needs none."""
    args: list[str] = []
    for action in parser._actions:  # noqa: SLF001
        if not action.option_strings and action.nargs != 0 and action.dest != "help":
            count = 1 if action.nargs in (None, "+", 1) else 0
            args += [_bad_value(action, nowhere)] * count
        elif action.required:
            args += [action.option_strings[-1], _bad_value(action, nowhere)]
    return args or None


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``main(argv)``; SystemExit (argparse) counts as a return."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def quiet_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No terminal to prompt on, no inherited credentials; returns an unusable folder."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    for name in ("LIFEVEIL_VAULT_PASSPHRASE", "LIFEVEIL_USER_TOKEN", "LIFEVEIL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIFEVEIL_DEVICE_DIR", str(tmp_path / "device"))
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker


def test_the_walk_finds_every_verb() -> None:
    commands = {words[0] for words, _ in LEAVES}
    assert {"encode", "vault", "device", "server", "query", "bench"} <= commands
    assert len(LEAVES) >= 30


@pytest.mark.parametrize(("words", "parser"), LEAVES, ids=IDS)
def test_help_and_unknown_flags(words: tuple[str, ...], parser, capsys) -> None:  # noqa: ANN001
    code, out, err = _run([*words, "--help"], capsys)
    assert code == 0 and "usage: lifeveil" in out and "Traceback" not in out + err
    code, out, err = _run([*words, "--no-such-flag"], capsys)
    assert code == USAGE and "usage: lifeveil" in err and "Traceback" not in err


#: Commands with required arguments; the others run their job with defaults (CURATED below
#: gives those bad input by hand).
NEEDY = [
    (words, parser) for words, parser in LEAVES if _bad_arguments(parser, Path("/")) is not None
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("words", "parser"), NEEDY, ids=[" ".join(w) for w, _ in NEEDY])
def test_bad_input_is_one_line(words, parser, capsys, quiet_env: Path) -> None:  # noqa: ANN001
    args = _bad_arguments(parser, quiet_env)
    assert args is not None
    code, out, err = _run([*words, *args], capsys)
    assert code != 0, f"exit 0 on bad input; stdout: {out[-300:]}"
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and ("error:" in lines[-1]), err[-500:]


def test_failures_map_to_exit_codes() -> None:
    assert describe_failure(FileNotFoundError(2, "No such file", "/x"))[1] == USAGE
    assert describe_failure(PermissionError(13, "Permission denied", "/x"))[1] == RUNTIME
    assert describe_failure(ConnectionRefusedError(111, "refused"))[1] == RUNTIME
    assert "bug in LifeVeil" in describe_failure(KeyError("k"))[0]
    assert describe_failure(InputError("bad flag - fix it")) == ("bad flag - fix it", 2)


def test_debug_shows_the_traceback(capsys, quiet_env: Path) -> None:  # noqa: ANN001
    argv = ["export", "--model", str(quiet_env / "missing"), "--out", "x.onnx"]
    code, _, err = _run(argv, capsys)
    assert code != 0 and "Traceback" not in err
    with pytest.raises(Exception):  # noqa: B017, PT011  (whatever the failure is, it surfaces)
        main(["--debug", *argv])


#: Mistakes a new user makes, beyond missing required arguments ({nowhere}: a path below a
#: regular file; {token}: a token file the server does not know; port 9 has no server).
CURATED: tuple[tuple[str, ...], ...] = (
    ("device", "requeue-conflicts", "--state", "{nowhere}"),
    (
        "device",
        "enroll",
        "--server",
        "https://127.0.0.1:9",
        "--name",
        "cam",
        "--user-token-file",
        "{token}",
    ),
    ("device", "run", "--source", "{nowhere}", "--vault", "{nowhere}", "--token-file", "{token}"),
    ("query", "list", "--server", "https://127.0.0.1:9", "--token-file", "{token}"),
    ("query", "count", "--server", "http://127.0.0.1:9", "--token-file", "{nowhere}"),
    ("server", "status", "--data-dir", "{nowhere}"),
    ("server", "audit", "--data-dir", "{nowhere}"),
    ("server", "tokens", "list", "--data-dir", "{nowhere}"),
    ("vault", "list", "--vault", "{nowhere}"),
    ("vault", "verify", "--vault", "{nowhere}"),
    ("vault", "adopt", "--vault", "{nowhere}"),
    ("vault", "purge", "--vault", "{nowhere}", "--yes"),
    ("vault", "init", "--vault", "{nowhere}"),
    ("vault", "export", "--vault", "{nowhere}", "-o", "-", "seg-1"),
    ("info", "--throughput", "{nowhere}"),
    ("encode", "{nowhere}"),
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("words", CURATED, ids=[" ".join(c[:3]) for c in CURATED])
def test_common_mistakes_are_one_line(words, capsys, quiet_env: Path) -> None:  # noqa: ANN001
    token = quiet_env.parent / "token"
    token.write_text("lv_unknown_token\n")
    argv = [w.format(nowhere=quiet_env / "missing", token=token) for w in words]
    code, out, err = _run(argv, capsys)
    assert code != 0, f"exit 0; stdout: {out[-300:]}"
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and "error:" in lines[-1], err[-500:]
