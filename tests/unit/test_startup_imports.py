"""A node's start-up is mostly imports: ``multiq worker`` must not load what it does not use."""
from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from multiq.cli import COMMANDS, cli

NOT_ON_THE_WORKER_PATH = [
    "multiq.cli.admin", "multiq.cli.beat", "multiq.cli.control", "multiq.cli.deadletter",
    "multiq.cli.events", "multiq.cli.multi", "psutil", "pickle", "difflib",
]


def test_importing_the_cli_loads_no_other_command() -> None:
    code = ("import sys, multiq.cli, multiq.cli.worker\n"
            f"print(sorted(m for m in {NOT_ON_THE_WORKER_PATH!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_every_command_is_listed_and_loads_on_use() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert f"  {name} " in result.output
        assert cli.get_command(None, name).name == name  # type: ignore[arg-type,union-attr]
