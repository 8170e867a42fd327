"""The systemd files in ``systemd/``: their settings, what their Exec lines really
run (through ``/bin/sh`` with the shipped environment file), the ``%`` escaping,
and ``systemd-analyze verify`` when that tool is installed (Debian/Ubuntu
package ``systemd``).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

UNITS_DIR = Path(__file__).resolve().parents[2] / "systemd"
SERVICE = "multiq.service"
BEAT = "multiq-beat.service"
TEMPLATE = "multiq@.service"
UNITS = (SERVICE, BEAT, TEMPLATE)
HOST = "box.example.com"


# -- tiny parsers ---------------------------------------------------------------

Unit = Dict[str, List[Tuple[str, str]]]


def parse_unit(path: Path) -> Unit:
    """Sections of a unit file as ``(key, value)`` lists, keeping repeated keys.

    Follows systemd: ``#``/``;`` comment lines, and a backslash at the end of a
    line joins it to the next with a space.
    """
    sections: Unit = {}
    current: List[Tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> List[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def one(unit: Unit, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: expected one value, got {found}"
    return found[0]


def parse_env_file(path: Path) -> Dict[str, str]:
    """``NAME="value"`` lines, as systemd's ``EnvironmentFile=`` reads them."""
    env: Dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"bad line {raw!r}"
        words = shlex.split(value)
        assert len(words) == 1, f"{name}: value must be quoted as one word: {raw!r}"
        env[name] = words[0]
    return env


SPECIFIERS = {"i", "I", "H", "n", "N", "p", "P", "j", "J"}


def expand_specifiers(text: str, instance: str = "", host: str = HOST) -> str:
    """Expand the unit-file specifiers these files may use; refuse any other."""
    known = {"i": instance, "I": instance, "H": host}

    def replace(match: re.Match[str]) -> str:
        char = match.group(1)
        if char == "%":
            return "%"
        assert char in SPECIFIERS, f"unexpected specifier %{char} in {text!r}"
        return known.get(char, f"<%{char}>")

    assert not re.search(r"%$", text), f"dangling % in {text!r}"
    return re.sub(r"%(.)", replace, text)


def unit(name: str) -> Unit:
    return parse_unit(UNITS_DIR / name)


@pytest.fixture(scope="module")
def conf() -> Dict[str, str]:
    return parse_env_file(UNITS_DIR / "multiq.conf")


# -- running an Exec line the way systemd would ---------------------------------


@pytest.fixture
def fake_multiq(tmp_path: Path) -> Tuple[Path, Path]:
    """An executable that records its pid and argv, one per line."""
    out = tmp_path / "argv.txt"
    script = tmp_path / "multiq"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$$\" \"$@\" > '{out}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, out


def run_exec_line(
    command: str, env: Dict[str, str], instance: str = ""
) -> Tuple[int, int, List[str]]:
    """Run an ``/bin/sh -c '...'`` Exec value; return (sh pid, program pid, program argv).

    Like systemd: specifiers first, then the line is split into words, then
    ``${NAME}`` inside a word is replaced by the variable's value; the shell
    expands the rest from the environment it is given.
    """
    words = shlex.split(expand_specifiers(command, instance))
    assert words[:2] == ["/bin/sh", "-c"] and len(words) == 3, words
    script = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), words[2])
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    proc = subprocess.Popen(["/bin/sh", "-c", script], env=full_env)
    assert proc.wait(timeout=30) == 0
    out = Path(env["MULTIQ_BIN"]).parent / "argv.txt"
    pid, *argv = out.read_text().splitlines()
    return proc.pid, int(pid), argv


def conf_with_bin(conf: Dict[str, str], fake: Path) -> Dict[str, str]:
    return {**conf, "MULTIQ_BIN": str(fake)}


# -- the environment file -------------------------------------------------------


def test_environment_file_defaults(conf: Dict[str, str]) -> None:
    assert conf["MULTIQ_NODES"] == "w1"
    assert conf["MULTIQ_BIN"] == "/usr/local/bin/multiq"
    assert conf["MULTIQ_APP"] == "proj"
    assert conf["MULTIQ_OPTS"] == "--time-limit=300 --concurrency=8"
    assert conf["MULTIQ_PID_FILE"] == "/run/multiq/%n.pid"
    assert conf["MULTIQ_LOG_FILE"] == "/var/log/multiq/%n%I.log"
    assert conf["MULTIQ_LOG_LEVEL"] == "INFO"
    assert conf["MULTIQ_BEAT_PID_FILE"].startswith("/run/multiq/")
    assert conf["MULTIQ_BEAT_LOG_FILE"].startswith("/var/log/multiq/")
    # systemd does not expand $VAR in an environment file
    assert not any("$" in value for value in conf.values())


def test_environment_file_documents_per_node_options() -> None:
    text = (UNITS_DIR / "multiq.conf").read_text()
    assert "-c:w2 4" in text
    assert "/etc/conf.d/multiq" in text


# -- multiq.service -------------------------------------------------------------


def test_service_settings() -> None:
    svc = unit(SERVICE)
    assert one(svc, "Service", "Type") == "forking"
    assert one(svc, "Service", "User") == "multiq"
    assert one(svc, "Service", "Group") == "multiq"
    assert one(svc, "Service", "EnvironmentFile") == "-/etc/conf.d/multiq"
    assert one(svc, "Service", "WorkingDirectory") == "/opt/multiq"
    assert one(svc, "Service", "Restart") == "always"
    assert one(svc, "Service", "KillMode") == "mixed"
    # several nodes, so no single main pid: no PIDFile=, no guessing
    assert one(svc, "Service", "GuessMainPID") == "no"
    assert values(svc, "Service", "PIDFile") == []
    assert one(svc, "Install", "WantedBy") == "multi-user.target"


def test_service_exec_lines() -> None:
    svc = unit(SERVICE)
    start = one(svc, "Service", "ExecStart")
    stop = one(svc, "Service", "ExecStop")
    reload_ = one(svc, "Service", "ExecReload")
    for line in (start, stop, reload_):
        assert line.startswith("/bin/sh -c '${MULTIQ_BIN} ")
        assert "$MULTIQ_NODES" in line
        assert "--pidfile=${MULTIQ_PID_FILE}" in line
        assert "--logfile=${MULTIQ_LOG_FILE}" in line
    assert "-A $MULTIQ_APP multi start $MULTIQ_NODES" in start
    assert "multi stopwait $MULTIQ_NODES" in stop
    assert "-A $MULTIQ_APP multi restart $MULTIQ_NODES" in reload_
    for line in (start, reload_):
        assert "--loglevel=${MULTIQ_LOG_LEVEL}" in line
        assert line.rstrip("'").endswith("$MULTIQ_OPTS")


def test_stopwait_finishes_before_systemd_gives_up() -> None:
    svc = unit(SERVICE)
    stop_timeout = int(one(svc, "Service", "TimeoutStopSec"))
    stop = one(svc, "Service", "ExecStop")
    timeout = int(re.search(r"--timeout=(\d+)", stop).group(1))  # type: ignore[union-attr]
    kill_after = re.search(r"--kill-after=(\d+)", stop)
    total = timeout + (int(kill_after.group(1)) if kill_after else 0)
    assert stop_timeout == 300
    assert total < stop_timeout


def test_service_commands_as_run_by_the_shell(
    conf: Dict[str, str], fake_multiq: Tuple[Path, Path]
) -> None:
    fake, _ = fake_multiq
    env = conf_with_bin({**conf, "MULTIQ_NODES": "w1 w2 w3"}, fake)
    files = ["--pidfile=/run/multiq/%n.pid", "--logfile=/var/log/multiq/%n%I.log"]
    nodes = ["w1", "w2", "w3"]
    opts = ["--loglevel=INFO", "--time-limit=300", "--concurrency=8"]
    svc = unit(SERVICE)

    *_, argv = run_exec_line(one(svc, "Service", "ExecStart"), env)
    assert argv == ["-A", "proj", "multi", "start", *nodes, *files, *opts]
    *_, argv = run_exec_line(one(svc, "Service", "ExecReload"), env)
    assert argv == ["-A", "proj", "multi", "restart", *nodes, *files, *opts]
    *_, argv = run_exec_line(one(svc, "Service", "ExecStop"), env)
    assert argv[:5] == ["multi", "stopwait", *nodes]
    assert argv[5:7] == files
    assert "--timeout=240" in argv[7:]


# -- multiq-beat.service --------------------------------------------------------


def test_beat_service(conf: Dict[str, str], fake_multiq: Tuple[Path, Path]) -> None:
    beat = unit(BEAT)
    assert one(beat, "Service", "Type") == "simple"
    assert one(beat, "Service", "Restart") == "always"
    assert one(beat, "Service", "EnvironmentFile") == "-/etc/conf.d/multiq"
    fake, _ = fake_multiq
    sh_pid, pid, argv = run_exec_line(one(beat, "Service", "ExecStart"), conf_with_bin(conf, fake))
    assert argv == [
        "-A", "proj", "beat",
        "--pidfile=" + conf["MULTIQ_BEAT_PID_FILE"],
        "--logfile=" + conf["MULTIQ_BEAT_LOG_FILE"],
        "--loglevel=INFO",
    ]
    assert pid == sh_pid, "beat must replace the shell (exec) to be the main process"


# -- multiq@.service ------------------------------------------------------------


def test_template_settings() -> None:
    tpl = unit(TEMPLATE)
    assert one(tpl, "Service", "Type") == "notify"
    assert one(tpl, "Service", "NotifyAccess") == "main"
    assert one(tpl, "Service", "KillSignal") == "SIGTERM"
    assert one(tpl, "Service", "KillMode") == "mixed"
    assert one(tpl, "Service", "TimeoutStopSec") == "300"
    assert one(tpl, "Service", "Restart") == "on-failure"
    assert values(tpl, "Service", "EnvironmentFile")[0] == "-/etc/conf.d/multiq"
    # the watchdog is offered, not imposed
    assert values(tpl, "Service", "WatchdogSec") == []
    assert re.search(r"^#\s*WatchdogSec=30$", (UNITS_DIR / TEMPLATE).read_text(), re.M)


def test_template_escaping() -> None:
    start = one(unit(TEMPLATE), "Service", "ExecStart")
    assert " worker -n %i@%%h " in start
    # systemd hands the worker "w1@%h" ...
    assert " worker -n w1@%h " in expand_specifiers(start, instance="w1")


def test_template_node_name_and_main_pid(
    conf: Dict[str, str], fake_multiq: Tuple[Path, Path]
) -> None:
    fake, _ = fake_multiq
    start = one(unit(TEMPLATE), "Service", "ExecStart")
    sh_pid, pid, argv = run_exec_line(start, conf_with_bin(conf, fake), instance="w2")
    assert argv == [
        "-A", "proj", "worker", "-n", "w2@%h",
        "--loglevel=INFO", "--time-limit=300", "--concurrency=8",
    ]
    assert pid == sh_pid, "the worker must replace the shell: NotifyAccess=main"
    # ... and the worker turns %h into this host, as multi names its nodes.
    from multiq.naming import nodename

    assert nodename(argv[4]) == f"w2@{socket.gethostname()}"


def test_specifiers_are_all_known() -> None:
    for name in UNITS:
        for section in unit(name).values():
            for _, value in section:
                expand_specifiers(value, instance="w1")


# -- multiq.tmpfiles ------------------------------------------------------------


def test_tmpfiles() -> None:
    lines = [
        line.split()
        for line in (UNITS_DIR / "multiq.tmpfiles").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ["d", "/run/multiq", "0755", "multiq", "multiq", "-"] in lines
    assert ["d", "/var/log/multiq", "0755", "multiq", "multiq", "-"] in lines
    assert len(lines) == 2


# -- systemd-analyze verify -----------------------------------------------------

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze not on PATH (Debian/Ubuntu: apt-get install systemd)",
)


def verify(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, paths)],
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture
def unit_copies(tmp_path: Path) -> Path:
    """The unit files in a directory of their own, so template instances resolve."""
    directory = tmp_path / "units"
    directory.mkdir()
    for name in UNITS:
        shutil.copy(UNITS_DIR / name, directory / name)
    return directory


@needs_analyze
@pytest.mark.parametrize("name", [SERVICE, BEAT, "multiq@w1.service"])
def test_systemd_analyze_verify(unit_copies: Path, name: str) -> None:
    result = verify(unit_copies / name)
    output = result.stdout + result.stderr
    stem = name.split("@")[0]
    complaints = [line for line in output.splitlines() if stem in line]
    assert result.returncode == 0 and not complaints, output


@needs_analyze
def test_systemd_analyze_sees_the_node_name(unit_copies: Path) -> None:
    """Ask systemd itself how it expands the template's ``-n`` argument.

    A probe unit runs a nonexistent command named after that argument, and
    ``verify`` reports the command's expanded path.
    """
    start = one(unit(TEMPLATE), "Service", "ExecStart")
    node = re.search(r" -n (\S+) ", start).group(1)  # type: ignore[union-attr]
    probe = unit_copies / "mqprobe@.service"
    probe.write_text(f"[Service]\nExecStart=/nonexistent-mqprobe/{node}\n")
    result = verify(unit_copies / "mqprobe@w1.service")
    assert "/nonexistent-mqprobe/w1@%h " in result.stdout + result.stderr, result.stderr
