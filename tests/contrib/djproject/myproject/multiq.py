import os

from multiq import MultiQ

# the default Django settings module of the multiq programs
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

app = MultiQ("myproject")

# read the settings; namespace: every multiq setting's name starts with "MULTIQ_"
app.config_from_object("django.conf:settings", namespace="MULTIQ")

# load the tasks modules of every installed Django app
app.autodiscover_tasks()


@app.task(bind=True)
def debug_task(self):
    print(f"Request: {self.request!r}")
