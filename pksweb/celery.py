"""The Celery application. Settings come from Django's settings (CELERY_*)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pksweb.settings")

app = Celery("pksweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
