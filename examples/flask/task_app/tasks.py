"""The tasks: plain functions under ``shared_task``, run by the app ``set_default()`` chose."""
from flask import current_app

from multiq import shared_task


@shared_task(ignore_result=False)
def add_together(a: int, b: int) -> int:
    return a + b


@shared_task(ignore_result=False)
def greet(name: str) -> str:
    """Reads the Flask configuration: works because the base task pushes an app context."""
    return f"{current_app.config['GREETING']}, {name}!"
