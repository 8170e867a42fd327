"""A Flask app whose views send tasks to multiq workers (application factory).

Settings for multiq live under the ``MULTIQ`` key of the Flask configuration;
``FLASK_``-prefixed environment variables override them, e.g.
``FLASK_MULTIQ__broker_url=redis://127.0.0.1:6379/1``.
"""
from flask import Flask

from multiq import MultiQ, Task


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        MULTIQ=dict(
            broker_url="redis://127.0.0.1:6379/1",
            result_backend="redis://127.0.0.1:6379/2",
            task_ignore_result=True,
        ),
        GREETING="Hello",
    )
    app.config.from_prefixed_env()
    multiq_init_app(app)

    from . import views

    app.register_blueprint(views.bp)
    return app


def multiq_init_app(app: Flask) -> MultiQ:
    """A multiq app configured from ``app.config["MULTIQ"]`` whose tasks run inside an
    application context of ``app`` (so they can use ``current_app``, extensions...)."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    multiq_app = MultiQ(app.name, task_cls=FlaskTask)
    multiq_app.config_from_object(app.config["MULTIQ"])
    multiq_app.set_default()
    app.extensions["multiq"] = multiq_app
    return multiq_app
