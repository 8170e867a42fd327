"""The command line: ``--config`` without ``-A`` makes Celery's default app from the module,
and the worker refuses the option values Celery refuses, with Celery's errors."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from multiq.app import MultiQ
from multiq.cli import cli
from multiq.cli.base import load_app


@pytest.fixture
def config_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "cli_cfg_mod.py").write_text(textwrap.dedent("""
        broker_url = "redis://localhost:1/0"
        task_default_queue = "from-config"
        imports = ["cli_cfg_tasks"]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "cli_cfg_mod"
    sys.modules.pop("cli_cfg_mod", None)


def test_config_without_app_makes_the_default_app(config_module: str) -> None:
    app = load_app({"config": config_module})
    assert isinstance(app, MultiQ) and app.main == "default"
    assert app.conf.task_default_queue == "from-config"
    assert app.conf.imports == ["cli_cfg_tasks"]
    assert app.conf.broker_url == "redis://localhost:1/0"
    with_broker = load_app({"config": config_module, "broker": "redis://localhost:2/0"})
    assert with_broker.conf.broker_url == "redis://localhost:2/0"  # -b still wins


def test_neither_app_nor_config_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["worker"], env={"MULTIQ_APP": None})
    assert result.exit_code == 2
    assert "No app given" in result.output and "--config" in result.output


def test_a_config_module_that_does_not_import_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["--config", "no_such_cfg_module", "worker"],
                                env={"MULTIQ_APP": None})
    assert result.exit_code == 2
    assert "no_such_cfg_module" in result.output


@pytest.mark.parametrize("args, message", [
    (["--autoscale", "1,2,3"],
     "Expected two comma separated integers or one integer.Got 3 instead."),
    (["--autoscale", "x"], "Expected an integer. Got x instead."),
    (["--autoscale", "4,y"], "Expected two comma separated integers.Got 4,y instead."),
    (["-c", "-1"], "must be a non-negative integer, got -1"),
    (["--soft-time-limit", "10", "--time-limit", "5"],
     "soft_time_limit must be less than or equal to time_limit"),
])
def test_worker_refuses_what_celery_refuses(args: Any, message: str) -> None:
    result = CliRunner().invoke(cli, ["-A", "nowhere_app_never_loaded", "worker", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
