"""The quick-start app: start a worker with ``multiq -A demo worker -l info``.

The Redis URLs come from MULTIQ_BROKER_URL / MULTIQ_RESULT_BACKEND, with the
tutorial's defaults (db 1 for messages, db 2 for results).
"""
import os
import time

from multiq import MultiQ

broker_url = os.environ.get("MULTIQ_BROKER_URL", "redis://127.0.0.1:6379/1")
result_backend = os.environ.get("MULTIQ_RESULT_BACKEND", "redis://127.0.0.1:6379/2")

app = MultiQ("demo", broker=broker_url, backend=result_backend)


@app.task
def add(x, y):
    return x + y


@app.task
def my_task(name, age):
    print(f"my_task starts: {name}")
    time.sleep(1)
    return f"name is {name}, age is {age}"


@app.task
def fail(message):
    raise ValueError(message)
