"""`lifeveil --help` starts fast because subcommand modules load only when used."""

from __future__ import annotations

import subprocess
import sys

from lifeveil.cli.main import SUBCOMMANDS, build_parser


def test_top_level_help_imports_no_subcommand_module():
    code = (
        "import sys, contextlib, io\n"
        "from lifeveil.cli.main import main, SUBCOMMAND_MODULES\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in (*SUBCOMMAND_MODULES, 'torch', 'numpy', 'fastapi') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_table_help_matches_each_module():
    full = build_parser(load_all=True)
    [sub] = [a for a in full._actions if a.dest == "command"]  # noqa: SLF001
    helps = {c.dest: c.help for c in sub._choices_actions}  # noqa: SLF001
    for name, (_, text) in SUBCOMMANDS.items():
        assert helps[name] == text, name


def test_only_the_named_command_is_loaded():
    parser = build_parser(["vault", "list"], load_all=False)
    args = parser.parse_args(["vault", "list", "--vault", "x"])
    assert args.command == "vault" and callable(args.func)


def test_help_of_device_side_commands_imports_no_torch():
    code = (
        "import sys, contextlib, io\n"
        "from lifeveil.cli.main import main\n"
        "for cmd in ('encode', 'train', 'export', 'info', 'device', 'query', 'bench'):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main([cmd, '--help'])\n"
        "print([m for m in ('torch', 'cv2', 'sklearn', 'fastapi') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
