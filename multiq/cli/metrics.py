"""``multiq metrics``: serve the Prometheus metrics of the app's broker on ``/metrics``."""
from __future__ import annotations

from typing import Any

import click

from multiq.cli.base import CLIContext, global_options, merge_globals


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.option("--port", type=click.IntRange(0, 65535), default=9808, show_default=True,
              help="Port to listen on.")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback unless told otherwise).")
@click.option("--metric-prefix", default="multiq", show_default=True,
              help="Name the families with this prefix; 'celery' names them as "
                   "celery-exporter does.")
@click.pass_context
def metrics(ctx: click.Context, port: int, address: str, metric_prefix: str,
            **kwargs: Any) -> None:
    """Serve Prometheus metrics (counts kept by the nodes, queues and nodes read live)."""
    from multiq.config import mask_url
    from multiq.metrics.exposition import check_prefix
    from multiq.metrics.server import make_server

    try:
        check_prefix(metric_prefix)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metric-prefix") from None
    obj: CLIContext = merge_globals(ctx, kwargs)
    app = obj.app
    try:
        server = make_server(app, address, port, metric_prefix)
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on {address}:{port}: {exc.strerror or exc}") \
            from None
    host, bound = str(server.server_address[0]), server.server_address[1]
    if not obj.quiet:
        click.echo(f"Serving metrics of {mask_url(str(app.conf.broker_url))} on "
                   f"http://{host}:{bound}/metrics")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
