from __future__ import absolute_import, unicode_literals

import os

from multiq import MultiQ  # the multiq package, not this module: imports are absolute

# the Django settings module of the multiq programs
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

app = MultiQ("myproject")

# the settings come from Django's; namespace="MULTIQ": their names start with MULTIQ_
app.config_from_object("django.conf:settings", namespace="MULTIQ")

# the tasks modules of every installed Django app
app.autodiscover_tasks()


@app.task(bind=True)
def debug_task(self):
    print(f"Request: {self.request!r}")
