"""The task the periodic rows send: it appends one JSON line per run to ``DJBEAT_RECORD``."""
import json
import os
import time

from multiq import shared_task


@shared_task(bind=True, name="beatdemo.record")
def record(self, label, *args, **kwargs):
    line = json.dumps({
        "label": label, "args": list(args), "kwargs": kwargs, "at": time.time(),
        "queue": (self.request.delivery_info or {}).get("routing_key"),
        "priority": self.request.priority, "headers": self.request.headers,
        "expires": self.request.expires,
    }, default=str)
    with open(os.environ["DJBEAT_RECORD"], "a") as out:
        out.write(line + "\n")
    return label
