"""The worker's entry point: ``multiq -A make_multiq:multiq_app worker -l info``."""
from task_app import create_app

flask_app = create_app()
multiq_app = flask_app.extensions["multiq"]
