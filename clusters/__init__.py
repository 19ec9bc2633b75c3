"""Clusters: registry, credentials, health, kube gateway and sandbox (issues 3 and 4)."""
