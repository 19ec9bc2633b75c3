"""Kubeconfig text for a sandbox cluster, as a person would paste it."""

from __future__ import annotations

import yaml


def kubeconfig_text(sandbox, name, **kwargs) -> str:
    return yaml.safe_dump(sandbox.kubeconfig(name, **kwargs))
