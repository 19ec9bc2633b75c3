from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        # access registers the rules with the policy; the events hook queues a fan-out after each commit.
        from notifications import access  # noqa: F401
        from notifications.hooks import event_committed
        from pksweb.celery import app
        from pksweb.events import after_commit

        after_commit(event_committed)
        # A fan-out task lost between the hook and the broker is caught up within a minute.
        app.conf.beat_schedule["notify-sweep"] = {"task": "notifications.tasks.notify_sweep", "schedule": 60.0}
