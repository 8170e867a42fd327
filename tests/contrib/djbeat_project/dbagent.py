"""Runs ORM statements for the tests in a process of its own, set up with the project's
settings (so the test process never configures Django).

Reads one JSON object per line, ``{"code": "..."}``, executes the code with the models,
``json``, ``dt`` (datetime) and ``timezone`` in scope, and answers one line:
``{"ok": true, "result": <the variable result>}`` or ``{"ok": false, "error": "..."}``.
"""
import datetime as dt
import json
import os
import sys
import traceback

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbeat_site.settings")

import django  # noqa: E402

django.setup()

from django.utils import timezone  # noqa: E402

from multiq.contrib.django.beat import models  # noqa: E402


def main() -> None:
    scope = {name: getattr(models, name) for name in (
        "PeriodicTask", "PeriodicTasks", "IntervalSchedule", "CrontabSchedule",
        "SolarSchedule", "ClockedSchedule")}
    scope.update(json=json, dt=dt, timezone=timezone)
    print(json.dumps({"ok": True, "result": "ready"}), flush=True)
    for line in sys.stdin:
        scope.pop("result", None)
        try:
            exec(json.loads(line)["code"], scope)
            reply = {"ok": True, "result": scope.get("result")}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        print(json.dumps(reply, default=str), flush=True)


if __name__ == "__main__":
    main()
