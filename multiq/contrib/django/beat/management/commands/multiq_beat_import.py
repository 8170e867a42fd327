"""``manage.py multiq_beat_import``: copy django-celery-beat's periodic tasks into
multiq's tables (by name: running it again updates, never duplicates)."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Copy the periodic tasks of django-celery-beat's tables (django_celery_beat_*) "
            "into multiq's, matched by name. django-celery-beat need not be installed.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--from-database", default="default",
                            help="Database alias holding the django_celery_beat_* tables.")

    def handle(self, *args: Any, **options: Any) -> None:
        from multiq.contrib.django.beat.legacy import NoLegacyTables, import_rows

        try:
            report = import_rows(options["from_database"])
        except NoLegacyTables as exc:
            raise CommandError(str(exc)) from exc
        for name, why in report.skipped.items():
            self.stderr.write(f"skipped {name!r}: {why}")
        self.stdout.write(f"{len(report.created)} periodic tasks created, "
                          f"{len(report.updated)} updated, {len(report.skipped)} skipped")
