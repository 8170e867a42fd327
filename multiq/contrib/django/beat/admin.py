"""Admin pages: periodic tasks (with enable / disable actions) and their schedules."""
from __future__ import annotations

from typing import Any

from django.contrib import admin, messages

from multiq.contrib.django.beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "task", "schedule_display", "one_off", "last_run_at",
                    "total_run_count", "date_changed")
    list_filter = ("enabled", "one_off", "task", "queue", "start_time", "last_run_at")
    search_fields = ("name", "task", "description")
    readonly_fields = ("last_run_at", "total_run_count", "date_changed")
    actions = ("enable_tasks", "disable_tasks")
    fieldsets = (
        (None, {"fields": ("name", "task", "enabled", "description")}),
        ("Schedule", {"fields": ("interval", "crontab", "solar", "clocked", "start_time",
                                 "one_off")}),
        ("Arguments", {"fields": ("args", "kwargs")}),
        ("Sending", {"classes": ("collapse",),
                     "fields": ("queue", "priority", "expires", "expire_seconds", "headers",
                                "exchange", "routing_key")}),
        ("Runs", {"fields": ("last_run_at", "total_run_count", "date_changed")}),
    )

    def get_queryset(self, request: Any) -> Any:
        return super().get_queryset(request).select_related(
            "interval", "crontab", "solar", "clocked")

    @admin.display(description="schedule")
    def schedule_display(self, obj: PeriodicTask) -> str:
        for name in obj.schedule_fields():
            return f"{name}: {getattr(obj, name)}"
        return "(none)"

    def _set_enabled(self, request: Any, queryset: Any, enabled: bool) -> None:
        change = {"enabled": enabled} if enabled else {"enabled": False, "last_run_at": None}
        count = queryset.update(**change)
        PeriodicTasks.update_changed(using=queryset.db)  # update() sends no signal
        word = "enabled" if enabled else "disabled"
        self.message_user(request, f"{count} periodic task(s) {word}.", messages.SUCCESS)

    @admin.action(description="Enable the selected periodic tasks")
    def enable_tasks(self, request: Any, queryset: Any) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable the selected periodic tasks")
    def disable_tasks(self, request: Any, queryset: Any) -> None:
        self._set_enabled(request, queryset, False)


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "every", "period")
    list_filter = ("period",)


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "minute", "hour", "day_of_week", "day_of_month",
                    "month_of_year", "timezone")
    list_filter = ("timezone",)


@admin.register(SolarSchedule)
class SolarScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "event", "latitude", "longitude")
    list_filter = ("event",)


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "clocked_time")
    date_hierarchy = "clocked_time"
