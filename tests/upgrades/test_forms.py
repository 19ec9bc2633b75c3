"""The plan and cluster pages' buttons refuse what the API refuses, in words, and change nothing they were not
asked to: an approval's comment is stored as written or refused (never dropped), a driver that is no driver
or is off in this deployment is refused (never saved as "not configured")."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clusters.models import Cluster
from upgrades import services
from upgrades.models import UpgradePlan
from upgrades.rules import COMMENT_LIMIT

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def submitted(fleet, operator, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_create(author=operator, name="p", target_version="1.31.2", waves=[[clusters[0].pk]])
        return services.plan_submit(plan=plan, by=operator)


def said(response) -> str:
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(comment=st.one_of(st.text(max_size=60), st.text(min_size=COMMENT_LIMIT - 2, max_size=COMMENT_LIMIT + 40)))
@example(comment="a\x00b")
@example(comment="x" * (COMMENT_LIMIT + 1))
def test_an_approval_keeps_its_comment_or_is_refused(submitted, approver, django_capture_on_commit_callbacks, comment):
    UpgradePlan.objects.filter(pk=submitted.pk).update(state="submitted")
    submitted.approvals.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        answer = signed_in(approver).post(reverse("upgrades:plan-action", args=[submitted.pk, "approve"]),
                                          {"revision": submitted.revision, "comment": comment})
    assert answer.status_code == 302
    plan = UpgradePlan.objects.get(pk=submitted.pk)
    approval = plan.approvals.filter(voided=False).first()
    if "\x00" in comment or len(comment.strip()) > COMMENT_LIMIT:
        assert approval is None and plan.state == "submitted" and said(answer), said(answer)
    else:
        assert approval is not None and approval.comment == comment.strip() and plan.state == "approved"
        assert "Plan approved." in said(answer)


@pytest.mark.parametrize("driver", ["bogus", "Sandbox", "command\x00", "x" * 500])
def test_a_driver_that_is_no_driver_changes_nothing(fleet, operator, driver):
    clusters, _ = fleet
    answer = signed_in(operator).post(reverse("upgrades:cluster-driver", args=[clusters[0].pk]), {"upgrade_driver": driver})
    assert answer.status_code == 302 and "Upgrade driver" in said(answer) and "saved" not in said(answer)
    assert Cluster.objects.get(pk=clusters[0].pk).upgrade_driver == "sandbox"


def test_the_command_driver_is_refused_when_this_deployment_has_it_off(fleet, operator, operator_api, settings):
    settings.PKSWEB_ALLOW_COMMAND_DRIVER = False
    clusters, _ = fleet
    refused = operator_api.patch(f"/api/clusters/{clusters[0].pk}/", {"upgrade_driver": "command", "upgrade_command": ["/bin/true"]},
                                 format="json")
    assert refused.status_code == 400 and "PKSWEB_ALLOW_COMMAND_DRIVER=1" in str(refused.json()["upgrade_driver"])
    page = signed_in(operator).post(reverse("upgrades:cluster-driver", args=[clusters[0].pk]),
                                    {"upgrade_driver": "command", "upgrade_command": "/bin/true {node}"})
    assert "PKSWEB_ALLOW_COMMAND_DRIVER=1" in said(page)
    assert Cluster.objects.get(pk=clusters[0].pk).upgrade_driver == "sandbox"


@pytest.mark.parametrize("data", [{}, {"upgrade_driver": "bogus"}, {"upgrade_driver": "sandbox"}])
def test_who_may_is_asked_before_what_was_sent(fleet, viewer, submitted, data):
    """A refusal for bad input must not tell someone who may not act at all anything but that."""
    clusters, _ = fleet
    assert signed_in(viewer).post(reverse("upgrades:cluster-driver", args=[clusters[0].pk]), data).status_code == 403
    assert signed_in(viewer).post(reverse("upgrades:plan-action", args=[submitted.pk, "approve"]), data).status_code == 403
