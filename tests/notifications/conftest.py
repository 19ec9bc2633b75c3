from __future__ import annotations

import pytest

from tests.support.receiver import Receiver


@pytest.fixture
def receiver():
    """The real HTTP receiver process (tests/support/receiver.py)."""
    process = Receiver()
    yield process
    process.stop()


@pytest.fixture(autouse=True)
def _quick_notifications(settings):
    settings.PKSWEB_NOTIFY_TIMEOUT = 1
    settings.PKSWEB_NOTIFY_BACKOFF = 0.2
    settings.PKSWEB_NOTIFY_ATTEMPTS = 2
    settings.PKSWEB_PUBLIC_URL = "https://pksweb.example"


@pytest.fixture
def cluster(db, operator):
    from clusters.models import Cluster

    return Cluster.objects.create(name="prod-eu", server="https://prod-eu.example:6443", credential_sealed="x", status="healthy")


@pytest.fixture
def namespace(cluster, tenant):
    from tenants.models import TenantNamespace

    return TenantNamespace.objects.create(tenant=tenant, cluster=cluster, name="acme-payments")


@pytest.fixture
def channel_for(receiver, operator):
    """``channel_for(path, tenant=None)``: a channel posting to the receiver at ``path``."""
    from notifications.services import channel_create

    def make(path, tenant=None):
        return channel_create(name=path, url=receiver.url(path), tenant=tenant, created_by=operator)

    return make


@pytest.fixture
def subscribe():
    from notifications.models import Subscription

    def make(user, kind, channel):
        return Subscription.objects.create(user=user, kind=kind, channel=channel)

    return make
