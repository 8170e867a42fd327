from django.db import models


class Visit(models.Model):
    """A row written by a task."""

    path = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.path} at {self.created:%H:%M:%S}"
