"""From a committed event to the deliveries it causes: who is told, on which channel, in which words.

Rules (the brief of issue 16, in plain words):

- a plan waits for approval → approvers (not its author); approved or rejected, with the comment → its author;
- a rollout starts, halts (with the reason) or finishes (succeeded or aborted) → operators;
- a cluster becomes unreachable or recovers → operators (on platform channels) and the admins of the tenants
  with namespaces on it (on their tenant's channel, in words about their namespaces: the policy does not let a
  tenant admin see a cluster, only their namespaces on it);
- a tenant namespace drifts → that tenant's admins (on their tenant's channel).

Each candidate is checked at send time: the person still has the role, the policy still lets them see the subject,
and the channel is still theirs to use (``notifications.access``). Messages about one subject on one channel are
debounced: at most one per kind per ``PKSWEB_NOTIFY_DEBOUNCE`` seconds (``Gate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Model
from django.urls import reverse
from django.utils import timezone

from clusters.choices import ClusterStatus
from clusters.models import Cluster
from notifications.access import channel_usable
from notifications.choices import DeliveryState, NotifyKind
from notifications.models import Channel, Delivery, Fanout, Gate, Subscription
from pksweb import policy
from pksweb.choices import Role
from pksweb.models import Event, User
from pksweb.text import bound
from tenants.models import TenantNamespace
from upgrades.models import Approval, Rollout, UpgradePlan

# The events that may notify someone (the hook queues a fan-out only for these).
EVENT_KINDS = frozenset({
    "upgrade.plan_submitted", "upgrade.plan_approved", "upgrade.plan_rejected",
    "rollout.started", "rollout.halted", "rollout.succeeded", "rollout.aborted",
    "cluster.status_changed", "tenant.namespace_drifted",
})
_SIMPLE = {
    "upgrade.plan_submitted": NotifyKind.PLAN_AWAITING, "upgrade.plan_approved": NotifyKind.PLAN_APPROVED,
    "upgrade.plan_rejected": NotifyKind.PLAN_REJECTED, "rollout.started": NotifyKind.ROLLOUT_STARTED,
    "rollout.halted": NotifyKind.ROLLOUT_HALTED, "rollout.succeeded": NotifyKind.ROLLOUT_FINISHED,
    "rollout.aborted": NotifyKind.ROLLOUT_FINISHED, "tenant.namespace_drifted": NotifyKind.NAMESPACE_DRIFTED,
}
AVAILABLE = (ClusterStatus.HEALTHY, ClusterStatus.DEGRADED)


def notify_kind(event: Event) -> NotifyKind | None:
    """Which kind of message ``event`` is, if any (a cluster going degraded is not one: only reachability is)."""
    if event.kind == "cluster.status_changed":
        old, new = event.payload.get("old"), event.payload.get("new")
        if new == ClusterStatus.UNREACHABLE and old != ClusterStatus.UNREACHABLE:
            return NotifyKind.CLUSTER_UNREACHABLE
        if old == ClusterStatus.UNREACHABLE and new in AVAILABLE:
            return NotifyKind.CLUSTER_RECOVERED
        return None
    return _SIMPLE.get(event.kind)


@dataclass(frozen=True)
class Message:
    title: str
    body: str


def _subject(event: Event, kind: NotifyKind) -> Model | None:
    """The object the event is about, as it is now (None when it is gone: nobody is told about it)."""
    ident = event.subject_id if event.subject_id.isdigit() else "0"
    if kind in (NotifyKind.PLAN_AWAITING, NotifyKind.PLAN_APPROVED, NotifyKind.PLAN_REJECTED):
        return UpgradePlan.objects.filter(pk=ident).first()
    if kind in (NotifyKind.ROLLOUT_STARTED, NotifyKind.ROLLOUT_HALTED, NotifyKind.ROLLOUT_FINISHED):
        return Rollout.objects.select_related("plan").filter(pk=ident).first()
    if kind in (NotifyKind.CLUSTER_UNREACHABLE, NotifyKind.CLUSTER_RECOVERED):
        return Cluster.objects.filter(pk=ident).first()
    namespace = event.payload.get("namespace")
    return TenantNamespace.objects.select_related("tenant", "cluster").filter(pk=namespace).first() if isinstance(namespace, int) else None


def _wants(user: User, kind: NotifyKind, subject: Model, channel: Channel) -> bool:
    """Whether ``user`` is to be told of ``subject`` on ``channel``: the rules above, the policy, the channel's audience."""
    if not channel_usable(user, channel):
        return False
    if isinstance(subject, UpgradePlan):
        if channel.tenant_id is not None or not policy.can(user, "view", subject):
            return False
        if kind == NotifyKind.PLAN_AWAITING:
            return user.role == Role.APPROVER and user.pk != subject.author_id
        return user.pk == subject.author_id
    if isinstance(subject, Rollout):
        return channel.tenant_id is None and policy.is_operator(user) and policy.can(user, "view", subject)
    if isinstance(subject, Cluster):
        if channel.tenant_id is None:
            return policy.is_operator(user) and policy.can(user, "view", subject)
        return channel.tenant_id in policy.admin_tenant_ids(user) and any(
            policy.can(user, "view", ns) for ns in TenantNamespace.objects.filter(cluster=subject, tenant_id=channel.tenant_id))
    if isinstance(subject, TenantNamespace):
        return (channel.tenant_id == subject.tenant_id and subject.tenant_id in policy.admin_tenant_ids(user)
                and policy.can(user, "view", subject))
    return False


def _link(name: str, pk: int) -> str:
    return settings.PKSWEB_PUBLIC_URL.rstrip("/") + reverse(name, kwargs={"pk": pk})


def _message(event: Event, kind: NotifyKind, subject: Model, channel: Channel) -> Message:
    """The words for ``channel``'s audience, with a link back to the page (an absolute URL: PKSWEB_PUBLIC_URL)."""
    if isinstance(subject, Cluster) and channel.tenant_id is not None:
        names = ", ".join(TenantNamespace.objects.filter(cluster=subject, tenant_id=channel.tenant_id)
                          .order_by("name").values_list("name", flat=True))
        state = "is unreachable" if kind == NotifyKind.CLUSTER_UNREACHABLE else "answers again"
        return Message(f"Cluster {subject.name} {state}",
                       f"Cluster {subject.name}, where your namespaces {bound(names, 300)} run, {state}.\n"
                       f"{_link('tenants:detail', channel.tenant_id)}")
    if isinstance(subject, Cluster):
        link = _link("clusters:detail", subject.pk)
    elif isinstance(subject, UpgradePlan):
        link = _link("upgrades:plan", subject.pk)
    elif isinstance(subject, Rollout):
        link = _link("upgrades:rollout", subject.pk)
    else:
        link = _link("tenants:namespace", subject.pk)
    text = event.message
    if kind == NotifyKind.PLAN_APPROVED:  # the rejection's event carries its comment already; an approval's does not
        comment = (Approval.objects.filter(plan_id=subject.pk, approver_name=event.actor_name).order_by("-id")
                   .values_list("comment", flat=True).first())
        text += f"\nComment: {bound(comment, 1000)}" if comment else ""
    return Message(bound(event.message, 200), f"{text}\n{link}")


def subject_key(event: Event, kind: NotifyKind) -> str:
    """What the debounce counts per: the subject, and for a plan's decisions the approver too (each decision is news)."""
    key = f"{event.subject_type}:{event.subject_id}"
    if kind == NotifyKind.NAMESPACE_DRIFTED:
        key = f"namespace:{event.payload.get('namespace')}"
    if kind in (NotifyKind.PLAN_APPROVED, NotifyKind.PLAN_REJECTED):
        key += f":{event.actor_name}"
    return bound(key, 100)


def _wait(gate: Gate, kind: str, now: datetime) -> float:
    """Seconds until a message of ``kind`` may go out on this gate (0: now)."""
    last = gate.sent.get(kind)
    if not last:
        return 0.0
    return max(0.0, float(settings.PKSWEB_NOTIFY_DEBOUNCE) - (now - datetime.fromisoformat(last)).total_seconds())


def _debounced_why(gate: Gate, kind: str) -> str:
    return (f"debounced: one went out at {datetime.fromisoformat(gate.sent[kind]):%H:%M:%S} UTC; at most one per "
            f"{settings.PKSWEB_NOTIFY_DEBOUNCE:g} s (the latest state is sent when the time is up, if it differs)")


@dataclass
class Decided:
    """What a fan-out decided: channels with a message queued, and gates holding news back (key, seconds to wait)."""

    queued: list[int] = field(default_factory=list)
    held: list[tuple[str, float]] = field(default_factory=list)


def _chosen(kind: NotifyKind, subject: Model, channel_id: int | None = None) -> dict[int, tuple[Channel, list[str]]]:
    """The channels to tell, each with who asked for it there: every subscriber checked again, now."""
    chosen: dict[int, tuple[Channel, list[str]]] = {}
    subscriptions = Subscription.objects.filter(kind=kind).select_related("user", "channel").order_by("channel_id", "user__username")
    if channel_id is not None:
        subscriptions = subscriptions.filter(channel_id=channel_id)
    policy.tenant_ids_prime(list({s.user for s in subscriptions}))
    for subscription in subscriptions:
        if _wants(subscription.user, kind, subject, subscription.channel):
            chosen.setdefault(subscription.channel_id, (subscription.channel, []))[1].append(subscription.user.get_username())
    return chosen


def _record(event: Event, kind: NotifyKind, subject: Model, channel: Channel, names: list[str], key: str, why: str) -> None:
    message = _message(event, kind, subject, channel)
    Delivery.objects.create(channel=channel, channel_name=channel.name, kind=kind, subject=key, event_id=event.pk,
                            recipients=bound(", ".join(names), 500), title=bound(message.title, 250), body=message.body,
                            state=DeliveryState.SUPPRESSED if why else DeliveryState.QUEUED, reason=why)


@transaction.atomic
def event_fanout(*, event: Event) -> Decided:
    """Turn one committed event into deliveries (queued, or suppressed by the debounce). Idempotent: an event
    already fanned out is skipped."""
    decided = Decided()
    if Fanout.objects.filter(event_id=event.pk).exists():
        return decided
    Fanout.objects.create(event_id=event.pk)
    kind = notify_kind(event)
    subject = _subject(event, kind) if kind is not None else None
    if kind is None or subject is None:
        return decided
    now, key = timezone.now(), subject_key(event, kind)
    for channel_id, (channel, names) in _chosen(kind, subject).items():
        gate, _ = Gate.objects.select_for_update().get_or_create(key=f"{channel_id}:{key}")
        if event.pk <= gate.last_event_id:
            continue  # newer news about this subject was decided already: this one is stale, never sent after it
        gate.last_event_id = event.pk
        wait = _wait(gate, kind, now)
        why = _debounced_why(gate, kind) if wait else ""
        if wait:
            if not gate.held:  # one settle per held spell, however many events it holds back
                decided.held.append((gate.key, wait))
            gate.held = True
        else:
            gate.sent[kind], gate.last_sent_kind, gate.held = now.isoformat(), kind, False
            decided.queued.append(channel_id)
        gate.save()
        _record(event, kind, subject, channel, names, key, why)
    return decided


@transaction.atomic
def gate_settle(*, key: str) -> Decided:
    """When a debounce ends: if the latest news about the subject was held back and differs from what the channel
    was last told (a flapping cluster that ended unreachable), send it now — the trailing edge of the debounce."""
    decided = Decided()
    gate = Gate.objects.select_for_update().filter(key=key).first()
    if gate is None or not gate.held:
        return decided
    event = Event.objects.filter(pk=gate.last_event_id).first()
    kind = notify_kind(event) if event is not None else None
    subject = _subject(event, kind) if event is not None and kind is not None else None
    if event is None or kind is None or subject is None or kind == gate.last_sent_kind:
        gate.held = False
        gate.save()
        return decided
    now = timezone.now()
    if wait := _wait(gate, kind, now):
        decided.held.append((key, wait))
        return decided
    channel_id = int(key.split(":", 1)[0])
    gate.held = False
    for channel, names in _chosen(kind, subject, channel_id).values():
        gate.sent[kind], gate.last_sent_kind = now.isoformat(), kind
        _record(event, kind, subject, channel, names, key.split(":", 1)[1], "")
        decided.queued.append(channel_id)
    gate.save()
    return decided
