"""The multiq app of the Django project: it runs Django's tasks."""
from multiq import MultiQ

app = MultiQ("djt", include=["multiq.contrib.django.tasks"])
