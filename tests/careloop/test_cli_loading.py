"""The command line imports only the module of the command it runs."""

from __future__ import annotations

import subprocess
import sys

from careloop.cli import load_commands
from careloop.cli.base import COMMAND_MODULES


def test_every_command_is_mapped_to_the_module_that_defines_it():
    defined = {name: command.callback.__module__ for name, command in load_commands().commands.items()
               if command.callback is not None}
    assert defined == COMMAND_MODULES


def modules_loaded_by(*argv: str) -> set[str]:
    program = ("import sys\nfrom careloop.cli import run\n"
               f"code = run({list(argv)!r})\n"
               "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
               "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.splitlines()[-1].split())


def test_an_import_does_not_load_the_pdf_chart_or_messaging_stack():
    loaded = modules_loaded_by("import", "reports", "--help")
    assert {"reportlab", "matplotlib", "numpy", "wechatpy", "twilio"} & loaded == set()


def test_help_still_lists_every_command():
    program = "import sys\nfrom careloop.cli import run\nsys.exit(run(['--help']))\n"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    for name in COMMAND_MODULES:
        assert f"  {name} " in done.stdout
