"""What every command shares: the global options and finding the app named by ``-A``."""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import click

from multiq.cli.compat import accepted

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_CANTCREAT = 73
EX_CONFIG = 78

GLOBAL_OPTIONS = ("app", "broker", "result_backend", "config", "workdir", "no_color", "quiet")


@dataclass
class CLIContext:
    """Global options, merged from before and after the sub-command."""

    options: Dict[str, Any] = field(default_factory=dict)
    _app: Any = None

    @property
    def quiet(self) -> bool:
        return bool(self.options.get("quiet"))

    @property
    def color(self) -> bool:
        return not self.options.get("no_color") and sys.stdout.isatty()

    @property
    def app(self) -> Any:
        if self._app is None:
            self._app = load_app(self.options)
        return self._app


def global_options(fun: Callable[..., Any]) -> Callable[..., Any]:
    """Add the global options to a command too, so ``multiq worker -A proj`` works."""
    decorators: List[Callable[[Any], Any]] = [
        click.option("-A", "--app", "app", default=None, envvar="MULTIQ_APP",
                     help="The app: module, module:attribute or package.module."),
        click.option("-b", "--broker", "broker", default=None, envvar="MULTIQ_BROKER_URL",
                     help="Broker URL (redis://...)."),
        click.option("--result-backend", "result_backend", default=None,
                     envvar="MULTIQ_RESULT_BACKEND", help="Result backend URL."),
        click.option("--config", "config", default=None,
                     help="Name of a configuration module."),
        click.option("--workdir", "workdir", default=None, type=click.Path(file_okay=False),
                     help="Change to this directory first."),
        click.option("-C", "--no-color", "no_color", is_flag=True, default=None,
                     help="No colours in the output."),
        click.option("-q", "--quiet", "quiet", is_flag=True, default=None,
                     help="Print less."),
        accepted("--loader", reason="settings come from the app and --config"),
        accepted("--skip-checks", flag=True, reason="there are no start-up checks to skip"),
    ]
    for decorate in reversed(decorators):
        fun = decorate(fun)
    return fun


def merge_globals(ctx: click.Context, kwargs: Dict[str, Any]) -> CLIContext:
    """Move the global options out of a command's kwargs into the shared context."""
    from click.core import ParameterSource

    obj = ctx.ensure_object(CLIContext)
    for name in GLOBAL_OPTIONS:
        value = kwargs.pop(name, None)
        if value is None:
            continue
        source = ctx.get_parameter_source(name)
        if source in (ParameterSource.ENVIRONMENT, ParameterSource.DEFAULT) \
                and obj.options.get(name) is not None:
            continue  # an explicit value given before the sub-command wins
        obj.options[name] = value
    return obj


def load_app(options: Dict[str, Any]) -> Any:
    """Import the app named by ``-A`` and apply ``-b`` / ``--result-backend`` / ``--config``.

    Without ``-A`` but with ``--config``, the app is a default one made from the
    configuration module (its ``imports`` / ``include`` name the task modules), as Celery's
    default app is."""
    workdir = options.get("workdir")
    if workdir:
        os.chdir(workdir)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    spec = options.get("app")
    if not spec and not options.get("config"):
        raise click.UsageError("No app given: use -A/--app (e.g. -A proj), set MULTIQ_APP, "
                               "or name a configuration module with --config.")
    try:
        app = find_app(spec) if spec else _default_app()
    except click.UsageError:
        raise
    except Exception as exc:
        reason = _spec_hint(spec) or f"{type(exc).__name__}: {exc}"
        raise click.UsageError(f"Unable to load app {spec!r}: {reason}") from exc
    if options.get("config"):
        try:
            app.config_from_object(options["config"])
        except ImportError as exc:
            raise click.UsageError(str(exc)) from exc
    # -b / --result-backend (or their variables, which click reads) win over the app's
    if options.get("broker"):
        app.conf.pin("broker_url", options["broker"])
        app._reset_connections()
    if options.get("result_backend"):
        app.conf.pin("result_backend", options["result_backend"])
        app._reset_connections()
    fixup = getattr(app, "django_fixup", None)
    if fixup is not None:  # a Django project's app: its models before any task module
        try:
            fixup.setup()
        except Exception as exc:
            raise click.UsageError(
                f"Unable to set up Django for {spec!r}: {type(exc).__name__}: {exc}") from exc
    return app


class ConfigurationError(click.ClickException):
    """A missing or unusable setting: one line on stderr, exit 78 (EX_CONFIG)."""

    exit_code = EX_CONFIG


def require_broker(app: Any) -> None:
    """Stop with one line naming the three ways to give a broker when the app has none."""
    from multiq.exceptions import BrokerNotConfigured

    if not app.conf.broker_url:
        raise ConfigurationError(str(BrokerNotConfigured()))


def _default_app() -> Any:
    """The app of ``--config`` without ``-A``: Celery's ``default`` app."""
    from multiq.app import MultiQ

    return MultiQ("default")


def _spec_hint(spec: Optional[str]) -> str:
    """A hint for an app given as a file (``-A main.py``, ``-A proj/app.py``)."""
    if not spec or not spec.endswith(".py"):
        return ""
    module = spec[:-3].replace(os.sep, ".").replace("/", ".").strip(".")
    return f"-A takes a module name, not a file name: use -A {module}"


def find_app(spec: str) -> Any:
    """``main``, ``pkg.mod``, ``pkg.mod:obj`` or ``pkg.mod.obj`` → the MultiQ instance."""
    from multiq.app import MultiQ

    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        head, _, tail = module_name.rpartition(".")
        if not head or exc.name != module_name:
            raise
        module, attr = importlib.import_module(head), tail
    if attr:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
        if callable(obj) and not isinstance(obj, MultiQ):
            obj = obj()
        if not isinstance(obj, MultiQ):
            raise click.UsageError(f"{spec!r} is not a MultiQ app (it is {type(obj).__name__})")
        return obj
    for name in ("app", "multiq"):
        candidate = getattr(module, name, None)
        if isinstance(candidate, MultiQ):
            return candidate
    found = [v for v in vars(module).values() if isinstance(v, MultiQ)]
    if len(found) == 1:
        return found[0]
    if hasattr(module, "__path__"):  # a package: look in pkg.multiq / pkg.celery
        for sub in ("multiq", "celery"):
            try:
                return find_app(f"{module_name}.{sub}")
            except (ImportError, click.UsageError):
                continue
    if not found:
        raise click.UsageError(f"Module {module_name!r} has no MultiQ app "
                               "(name it 'app', or use -A module:attribute)")
    raise click.UsageError(f"Module {module_name!r} has several MultiQ apps; "
                           "choose one with -A module:attribute")


def echo(ctx: CLIContext, message: str = "", err: bool = False, **style: Any) -> None:
    if ctx.quiet and not err:
        return
    if style and ctx.color:
        message = click.style(message, **style)
    click.echo(message, err=err)


def hostname_option(default: Optional[str] = None) -> Callable[..., Any]:
    return click.option("-n", "--hostname", default=default,
                        help="Node name, e.g. w1@%h (%h host, %n short host, %d domain).")


def hold_pidfile(path: Optional[str], reporter: Any) -> Any:
    """Take the pid file of a node or beat: the ``Pidfile``, None when there is no path, or
    the exit status 73 (reported to the launcher and printed) when a live process holds
    it."""
    if not path:
        return None
    from multiq.supervisor.pidfile import Pidfile, PidfileHeld  # psutil: only with a pid file

    lock = Pidfile(path)
    try:
        lock.acquire()
    except PidfileHeld as exc:
        reporter.error(f"{EX_CANTCREAT} {exc}")
        click.echo(str(exc), err=True)
        return EX_CANTCREAT
    return lock
