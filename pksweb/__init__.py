"""pksweb: a web dashboard for day-2 operations of Kubernetes fleets."""

from pksweb.celery import app as celery_app

__all__ = ["celery_app"]
