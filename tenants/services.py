"""Writes of tenancy: tenants, members, namespaces, dedicated nodes (making namespaces so on their clusters is
``tenants.reconciler``'s, queued through ``tenants.tasks``).

Cluster I/O goes through ``clusters.kube`` (via ``clusters.connect.gateway_for``);
every change is published through ``pksweb.events.publish``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from clusters import hooks
from clusters.connect import gateway_for
from clusters.kube import KubeError
from clusters.models import Cluster, ClusterNode
from clusters.sweep import nodes_refresh
from pksweb import policy
from pksweb.choices import Role, SubjectType
from pksweb.events import publish
from pksweb.models import User
from pksweb.policy import require
from pksweb.services import user_create
from pksweb.text import article, bound
from pksweb.types import Actor, AnyUser
from tenants import bundle, tasks
from tenants.choices import Isolation, MemberRole, SyncState
from tenants.models import NodeAssignment, Tenant, TenantMembership, TenantNamespace
from tenants.validators import DNS_LABEL

PROFILE_FIELDS = (
    "isolation", "max_namespaces", "pod_security", "quota_cpu", "quota_memory", "quota_pods", "quota_storage",
    "quota_load_balancers", "limit_cpu", "limit_memory", "request_cpu", "request_memory", "allow_same_namespace",
    "allow_same_tenant", "allow_dns", "ingress_from_namespaces", "egress_cidrs",
)
BUNDLE_FIELDS = frozenset(PROFILE_FIELDS) - {"max_namespaces"}


def _tenant_event(tenant: Tenant, kind: str, message: str, actor: AnyUser | None = None, **payload: Any) -> None:
    publish(kind=kind, message=message, actor=actor, subject_type=SubjectType.TENANT, subject_id=tenant.pk,
            subject_label=tenant.name, tenant=tenant, payload=payload)


# ---- tenants and members ----------------------------------------------------------


def _check_dedicated_cluster(tenant: Tenant, clusters: Iterable[Cluster]) -> None:
    clusters = list(clusters)
    if tenant.isolation == Isolation.DEDICATED_CLUSTER:
        for cluster in clusters:
            others = sorted({n.tenant.name for n in TenantNamespace.objects.filter(cluster=cluster)
                             .exclude(tenant_id=tenant.pk).select_related("tenant")})
            if others:
                raise ValidationError({"clusters": f"Cluster {cluster.name} already hosts namespaces of other tenants "
                                                   f"({', '.join(others)}); a dedicated-cluster tenant needs clusters of its own."})
            holders = sorted({a.tenant.name for a in NodeAssignment.objects.filter(cluster=cluster)
                              .exclude(tenant_id=tenant.pk).select_related("tenant")})
            if holders:
                raise ValidationError({"clusters": f"Cluster {cluster.name} has nodes dedicated to other tenants "
                                                   f"({', '.join(holders)}); release them, or give this tenant clusters of its own."})
    for cluster in clusters:
        owner = Tenant.objects.filter(isolation=Isolation.DEDICATED_CLUSTER, clusters=cluster).exclude(pk=tenant.pk).first()
        if owner is not None:
            raise ValidationError({"clusters": f"Cluster {cluster.name} is dedicated to tenant {owner.name}."})


def _trusts_no_tenant_namespace(names: list[str]) -> None:
    """pksweb never lets a tenant's namespace in by its name (see bundle.network_policies): say so instead
    of writing a rule that does nothing."""
    taken = sorted(set(TenantNamespace.objects.filter(name__in=names or []).values_list("name", flat=True)))
    if taken:
        which = "is a tenant namespace" if len(taken) == 1 else "are tenant namespaces"
        raise ValidationError({"ingress_from_namespaces": f"{', '.join(taken[:5])} {which}: pksweb never lets a tenant's "
                                                          "namespace in by name (another tenant could take the name). Name "
                                                          "platform namespaces only, such as ingress-nginx."})


@transaction.atomic
def tenant_create(*, name: str, created_by: AnyUser | None, display_name: str = "", clusters: Iterable[Cluster] = (),
                  **profile: Any) -> Tenant:
    """Create a tenant with its profile and the clusters it may use."""
    require(created_by, "create", Tenant, "Only operators can create tenants.")
    unknown = set(profile) - set(PROFILE_FIELDS)
    if unknown:
        raise ValidationError({"profile": f"Unknown profile fields: {', '.join(sorted(unknown))}."})
    tenant = Tenant(name=(name or "").strip(), display_name=display_name, **profile)
    tenant.full_clean()
    _trusts_no_tenant_namespace(tenant.ingress_from_namespaces)
    clusters = list(clusters)
    _check_dedicated_cluster(tenant, clusters)
    try:
        with transaction.atomic():
            tenant.save()
    except IntegrityError:
        raise ValidationError({"name": f"A tenant called {tenant.name!r} exists already."}) from None
    tenant.clusters.set(clusters)
    _tenant_event(tenant, "tenant.created", f"Tenant {tenant.name} created ({tenant.get_isolation_display().lower()})", created_by)
    return tenant


def tenant_update(*, tenant: Tenant, updated_by: AnyUser | None, clusters: Iterable[Cluster] | None = None, **changes: Any) -> Tenant:
    """Edit a tenant's profile; a change to what namespaces get re-reconciles all of them."""
    require(updated_by, "operate", tenant, "Only operators can change tenants.")
    unknown = set(changes) - set(PROFILE_FIELDS) - {"display_name"}
    if unknown:
        raise ValidationError({"profile": f"Unknown profile fields: {', '.join(sorted(unknown))}."})
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        changed = [k for k, v in changes.items() if getattr(locked, k) != v]
        for key, value in changes.items():
            setattr(locked, key, value)
        locked.full_clean()
        if "ingress_from_namespaces" in changed:
            _trusts_no_tenant_namespace(locked.ingress_from_namespaces)
        if clusters is not None:
            clusters = list(clusters)
            removed = set(locked.clusters.values_list("pk", flat=True)) - {c.pk for c in clusters}
            in_use = TenantNamespace.objects.filter(tenant=locked, cluster_id__in=removed).select_related("cluster").first()
            if in_use is not None:
                raise ValidationError({"clusters": f"Tenant {locked.name} still has namespace {in_use.name} on cluster "
                                                   f"{in_use.cluster.name}; delete it before taking the cluster away."})
            _check_dedicated_cluster(locked, clusters)
            if removed or {c.pk for c in clusters} - set(locked.clusters.values_list("pk", flat=True)):
                changed.append("clusters")
            locked.clusters.set(clusters)
        elif "isolation" in changed:
            _check_dedicated_cluster(locked, locked.clusters.all())
        locked.save()
        if changed:
            _tenant_event(locked, "tenant.updated", f"Tenant {locked.name}: {', '.join(sorted(set(changed)))} changed", updated_by,
                          changed=sorted(set(changed)))
        if BUNDLE_FIELDS & set(changed):
            ids = list(locked.namespaces.values_list("pk", flat=True))
            TenantNamespace.objects.filter(pk__in=ids).update(sync_state=SyncState.PENDING)
            transaction.on_commit(lambda: _enqueue_reconciles(ids))
    return locked


@transaction.atomic
def tenant_delete(*, tenant: Tenant, deleted_by: AnyUser | None) -> None:
    """Remove a tenant that has no namespaces left; the removal stays in the audit trail."""
    require(deleted_by, "operate", tenant, "Only operators can delete tenants.")
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if locked.namespaces.exists():
        raise ValidationError({"non_field_errors": f"Tenant {locked.name} still has namespaces; delete them first."})
    publish(kind="tenant.deleted", message=f"Tenant {locked.name} deleted", actor=deleted_by, subject_type=SubjectType.TENANT,
            subject_id=locked.pk, subject_label=locked.name)
    locked.delete()


@transaction.atomic
def membership_add(*, tenant: Tenant, user: User, role: str = MemberRole.ADMIN, added_by: AnyUser | None = None) -> TenantMembership:
    """Make ``user`` an admin or viewer of ``tenant`` (a changed role is updated)."""
    require(added_by, "operate", tenant, "Only operators can change a tenant's members.")
    if role not in MemberRole.values:
        raise ValidationError({"role": f"{role!r} is not a member role: use admin or viewer."})
    if user.role != Role.TENANT_ADMIN:
        raise ValidationError({"username": f"{user.get_username()} is {article(user.get_role_display().lower())} and sees every tenant "
                                           "already; only tenant users (role tenant-admin) become members."})
    membership = TenantMembership.objects.select_for_update().filter(tenant=tenant, user=user).first()
    if membership is not None and membership.role == role:
        return membership
    if membership is None:
        membership = TenantMembership(tenant=tenant, user=user, role=role)
    membership.role = role
    membership.full_clean()
    membership.save()
    policy.tenant_ids_forget(user)
    _tenant_event(tenant, "tenant.member_added", f"{user.get_username()} is now {role} of tenant {tenant.name}", added_by,
                  username=user.get_username(), role=role)
    return membership


@transaction.atomic
def membership_remove(*, tenant: Tenant, user: User, removed_by: AnyUser | None) -> None:
    require(removed_by, "operate", tenant, "Only operators can change a tenant's members.")
    deleted, _ = TenantMembership.objects.filter(tenant=tenant, user=user).delete()
    if not deleted:
        raise ValidationError({"username": f"{user.get_username()} is not a member of {tenant.name}."})
    _tenant_event(tenant, "tenant.member_removed", f"{user.get_username()} is no longer a member of tenant {tenant.name}",
                  removed_by, username=user.get_username())


@transaction.atomic
def membership_sync(*, user: User, wanted: dict[str, str]) -> list[str]:
    """Make ``user``'s tenant memberships exactly ``wanted`` (tenant name -> admin or viewer), as the identity
    provider's groups say at a sign-in: memberships the groups no longer give are removed, tenants that do not
    exist are skipped (and said so). Each change is a tenant event; returns the changes in words.

    No person acts here (the provider does), so no policy check: the caller is the sign-in service."""
    changes: list[str] = []
    tenants = {tenant.name: tenant for tenant in Tenant.objects.filter(name__in=list(wanted))}
    current = {m.tenant.name: m for m in TenantMembership.objects.select_for_update().filter(user=user).select_related("tenant")}
    for name, membership in current.items():
        if name not in wanted:
            membership.delete()
            changes.append(f"no longer a member of {name}")
            _tenant_event(membership.tenant, "tenant.member_removed", f"{user.get_username()} is no longer a member of tenant "
                          f"{name} (the identity provider's groups)", None, username=user.get_username(), source="oidc")
    for name, role in wanted.items():
        tenant = tenants.get(name)
        if tenant is None:
            changes.append(f"no tenant {name} (a group names it)")
            continue
        existing = current.get(name)
        if existing is not None and existing.role == role:
            continue
        changed = existing or TenantMembership(tenant=tenant, user=user)
        changed.role = role
        changed.full_clean()
        changed.save()
        changes.append(f"{role} of {name}")
        _tenant_event(tenant, "tenant.member_added", f"{user.get_username()} is now {role} of tenant {name} (the identity "
                      "provider's groups)", None, username=user.get_username(), role=role, source="oidc")
    policy.tenant_ids_forget(user)
    return changes


@transaction.atomic
def user_create_in_tenants(*, username: str, role: Role, password: str | None, tenants: Iterable[Tenant] = (),
                           email: str = "", check_password: bool = True, created_by: Actor = None) -> User:
    """Create a user with a role (``pksweb.services.user_create``); tenant admins become admins of ``tenants``.

    A tenant admin needs at least one tenant; other roles take none.
    """
    tenants = list(tenants)
    if role == Role.TENANT_ADMIN and not tenants:
        raise ValidationError({"tenant": "A tenant admin needs at least one tenant: pass --tenant NAME."})
    if role != Role.TENANT_ADMIN and tenants:
        raise ValidationError({"tenant": f"Only tenant admins belong to tenants; {article(role.label.lower())} sees the whole fleet."})

    def join(user: User) -> list[str]:
        for tenant in tenants:
            membership_add(tenant=tenant, user=user, role=MemberRole.ADMIN)
        return [tenant.name for tenant in tenants]

    return user_create(username=username, role=role, password=password, email=email, check_password=check_password,
                       created_by=created_by, join=join)


# ---- namespaces ------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not DNS_LABEL.match(name):
        raise ValidationError({"name": f"{name!r} is not a valid namespace name: use lower-case letters, digits and '-', "
                                       "starting and ending with a letter or digit, at most 63 characters."})
    if name in bundle.SYSTEM_NAMESPACES or name.startswith(bundle.RESERVED_PREFIXES):
        raise ValidationError({"name": f"{name!r} is a system namespace name (default, kube-*, openshift-*, pksweb-*); pick another."})


def _trusted(name: str) -> bool:
    """Whether some tenant's segmentation lets traffic in from namespaces called ``name`` (a platform namespace)."""
    return any(name in (t.ingress_from_namespaces or []) for t in Tenant.objects.only("ingress_from_namespaces"))


def namespace_create(*, tenant: Tenant, cluster: Cluster, name: str, created_by: AnyUser | None) -> TenantNamespace:
    """Give ``tenant`` a namespace on ``cluster``; the reconciler then makes it so on the cluster."""
    require(created_by, "manage", tenant, "You may not create namespaces for this tenant.")
    name = (name or "").strip()
    _check_name(name)
    if _trusted(name):
        raise ValidationError({"name": f"{name!r} is the name of a platform namespace (such as an ingress controller's) that "
                                       "tenant network policies let traffic in from; pick another name."})
    if not tenant.clusters.filter(pk=cluster.pk).exists():
        # Not its name: a tenant admin learns nothing about clusters that are not their tenant's.
        raise ValidationError({"cluster": f"No such cluster for tenant {tenant.name}: pick one of the tenant's clusters "
                                          "(an operator can add clusters to the tenant)."})
    if Tenant.objects.filter(isolation=Isolation.DEDICATED_CLUSTER, clusters=cluster).exclude(pk=tenant.pk).exists():
        raise ValidationError({"cluster": f"Cluster {cluster.name} is dedicated to another tenant; pksweb places no other "
                                          "tenant's namespace there."})
    try:
        existing = gateway_for(cluster).objects.get("Namespace", name)
    except KubeError as exc:
        raise ValidationError({"cluster": f"Cannot check cluster {cluster.name}: {exc.message}"}) from None
    if existing is not None and not (bundle.is_managed(existing) and
                                     existing["metadata"].get("labels", {}).get(bundle.TENANT_LABEL) == tenant.name):
        raise ValidationError({"name": f"A namespace called {name!r} already exists on cluster {cluster.name}; pick another name."})
    with transaction.atomic():
        # Lock the tenant row: concurrent creations are counted against the current limit.
        limit = Tenant.objects.select_for_update().values_list("max_namespaces", flat=True).get(pk=tenant.pk)
        count = TenantNamespace.objects.filter(tenant=tenant).count()
        if count >= limit:
            raise ValidationError({"name": f"Tenant {tenant.name} has {count} of its {limit} namespaces; "
                                           "delete one or ask an operator to raise the limit."})
        namespace = TenantNamespace(tenant=tenant, cluster=cluster, name=name,
                                    created_by=created_by if isinstance(created_by, User) else None)
        namespace.full_clean(validate_unique=False, validate_constraints=False)  # the unique row decides, below
        try:
            with transaction.atomic():
                namespace.save()
        except IntegrityError:
            raise ValidationError({"name": f"A namespace called {name!r} already exists on cluster {cluster.name}; pick another name."}) from None
        _tenant_event(tenant, "tenant.namespace_created", f"Namespace {name} on {cluster.name} created for {tenant.name}",
                      created_by, namespace=namespace.pk, cluster=cluster.name, state=namespace.sync_state)
        transaction.on_commit(lambda: _enqueue_reconcile(namespace.pk))
    return namespace


def _enqueue_reconcile(namespace_id: int) -> None:
    tasks.namespace_reconcile_task.delay(namespace_id)


def _enqueue_reconciles(namespace_ids: list[int]) -> None:
    for namespace_id in namespace_ids:
        _enqueue_reconcile(namespace_id)


def namespace_reconcile_request(*, namespace: TenantNamespace, requested_by: AnyUser | None) -> None:
    """Queue a re-apply of the namespace's bundle ("Re-apply" on the page, the API)."""
    require(requested_by, "manage", namespace.tenant, "You may not reconcile this namespace.")
    transaction.on_commit(lambda: _enqueue_reconcile(namespace.pk))


def namespace_delete(*, namespace: TenantNamespace, confirm: str, deleted_by: AnyUser | None) -> None:
    """Delete a tenant namespace from the cluster and from pksweb; the caller must type its name."""
    require(deleted_by, "manage", namespace.tenant, "You may not delete this namespace.")
    if (confirm or "").strip() != namespace.name:
        raise ValidationError({"confirm": f"Type the namespace's name ({namespace.name}) to delete it."})
    try:
        ops = gateway_for(namespace.cluster).objects
        actual = ops.get("Namespace", namespace.name)
        if actual is not None and bundle.is_managed(actual):
            ops.delete("Namespace", namespace.name)
    except KubeError as exc:
        raise ValidationError({"cluster": f"The namespace could not be deleted from {namespace.cluster.name}: {exc.message}"}) from None
    with transaction.atomic():
        TenantNamespace.objects.filter(pk=namespace.pk).delete()
        _tenant_event(namespace.tenant, "tenant.namespace_deleted",
                      f"Namespace {namespace.name} on {namespace.cluster.name} deleted", deleted_by,
                      namespace=namespace.pk, cluster=namespace.cluster.name)


# ---- dedicated nodes --------------------------------------------------------------------


def node_assign(*, cluster: Cluster, node: str, tenant: Tenant, assigned_by: AnyUser | None) -> NodeAssignment:
    """Give a node to a dedicated-nodes tenant: label and taint it, then record it."""
    require(assigned_by, "operate", cluster, "Only operators can assign nodes.")
    if tenant.isolation != Isolation.DEDICATED_NODES:
        raise ValidationError({"tenant": f"Tenant {tenant.name} is not a dedicated-nodes tenant."})
    if not tenant.clusters.filter(pk=cluster.pk).exists():
        raise ValidationError({"tenant": f"Tenant {tenant.name} may not use cluster {cluster.name}."})
    snapshot = ClusterNode.objects.filter(cluster=cluster, name=node).first()
    if snapshot is None:
        raise ValidationError({"node": f"{cluster.name} has no node {bound(node, 80)!r} (as of its last probe)."})
    if snapshot.is_control_plane:
        raise ValidationError({"node": f"{node} is a control-plane node; only workers are given to tenants."})
    hooks.node_left_alone(cluster, node)
    current = NodeAssignment.objects.filter(cluster=cluster, node=node).select_related("tenant").first()
    if current is not None:
        raise ValidationError({"node": f"{node} is assigned to tenant {current.tenant.name} already; release it first."})
    # Claim the node in the database first (the unique row decides between two assigns at once), then
    # label it; if the cluster refuses, the claim is taken back. Never the other way round: a label
    # written by the loser of a race would leave the cluster and pksweb disagreeing.
    try:
        with transaction.atomic():
            assignment = NodeAssignment.objects.create(tenant=tenant, cluster=cluster, node=node)
    except IntegrityError:
        raise ValidationError({"node": f"{node} was assigned a moment ago; reload."}) from None
    try:
        gateway_for(cluster).set_node_tenant(node, tenant.name)
    except KubeError as exc:
        NodeAssignment.objects.filter(pk=assignment.pk).delete()
        raise ValidationError({"node": exc.message}) from None
    nodes_refresh(cluster=cluster)  # the cluster page shows the label and taint now, not after the next sweep
    with transaction.atomic():
        publish(kind="tenant.node_assigned", message=f"Node {node} of {cluster.name} assigned to tenant {tenant.name}",
                actor=assigned_by, subject_type=SubjectType.CLUSTER, subject_id=cluster.pk, subject_label=cluster.name,
                tenant=tenant, payload={"node": node})
    return assignment


def node_release(*, cluster: Cluster, node: str, released_by: AnyUser | None) -> None:
    """Take a node back; refused while the tenant's pods still run there (drain it first)."""
    require(released_by, "operate", cluster, "Only operators can release nodes.")
    assignment = NodeAssignment.objects.filter(cluster=cluster, node=node).select_related("tenant").first()
    if assignment is None:
        raise ValidationError({"node": f"{bound(node, 80)} is not assigned to any tenant."})
    hooks.node_left_alone(cluster, node)
    tenant = assignment.tenant
    namespaces = set(TenantNamespace.objects.filter(tenant=tenant, cluster=cluster).values_list("name", flat=True))
    try:
        gateway = gateway_for(cluster)
        running = [p.key for p in gateway.pods_on_node(node) if p.namespace in namespaces and not p.terminating
                   and p.owner_kind != "DaemonSet" and not p.mirror]
        if running:
            raise ValidationError({"node": f"{len(running)} of tenant {tenant.name}'s pods still run on {node} "
                                           f"({', '.join(running[:5])}); drain the node first."})
        gateway.set_node_tenant(node, None)
    except KubeError as exc:
        raise ValidationError({"node": exc.message}) from None
    with transaction.atomic():
        assignment.delete()
        publish(kind="tenant.node_released", message=f"Node {node} of {cluster.name} released by tenant {tenant.name}",
                actor=released_by, subject_type=SubjectType.CLUSTER, subject_id=cluster.pk, subject_label=cluster.name,
                tenant=tenant, payload={"node": node})
    nodes_refresh(cluster=cluster)
