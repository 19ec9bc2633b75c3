"""The one door to a cluster: its decrypted credential and its gateway.

Every module that talks to a cluster asks here; nothing else unseals a credential or builds a
``Gateway``. A credential never leaves the server: it is unsealed here, handed to the gateway,
and never rendered or serialized.
"""

from __future__ import annotations

from django.conf import settings

from clusters import crypto
from clusters.kube import Credential, Gateway, KubeError
from clusters.models import Cluster


def cluster_credential(cluster: Cluster) -> Credential:
    """The decrypted credential (server side only; never render or serialize it).

    An archived cluster has none: work still naming it (an aborted rollout's uncordon) is told so
    in words, as a cluster error, and records it instead of failing again and again."""
    stored = crypto.unseal(cluster.credential_sealed)
    if cluster.archived_at is not None or not stored.get("server"):
        raise KubeError("removed", f"Cluster {cluster.name} was removed from pksweb and its credential deleted: pksweb "
                                   "cannot reach it any more.")
    return Credential.from_dict(stored)


def gateway_verified(cluster: Cluster) -> Gateway:
    """The gateway, after checking that its credential still reaches this cluster (its kube-system UID): before
    pksweb changes a node, never on a cluster a moved proxy or DNS name now points at."""
    gateway = gateway_for(cluster)
    if cluster.uid:
        found = gateway.identity()
        if found != cluster.uid:
            raise KubeError("identity", other_cluster(cluster, found))
    return gateway


def other_cluster(cluster: Cluster, found: str) -> str:
    return (f"The credential of {cluster.name} now reaches a different cluster (kube-system namespace UID {found}, registered "
            f"UID {cluster.uid}): pksweb neither records nor changes anything there. Fix the credential, or the proxy or DNS "
            "name in front of the cluster.")


def gateway_for(cluster: Cluster, timeout: tuple[float, float] | None = None) -> Gateway:
    return Gateway(cluster_credential(cluster), key=f"cluster-{cluster.pk}", timeout=timeout or settings.PKSWEB_PROBE_TIMEOUT)
