"""Turning what a person typed (form or API) into a checked ``Credential``."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from clusters.kube import Credential, KubeConfigError, parse_kubeconfig
from clusters.kube.credentials import MAX_KUBECONFIG_BYTES, credential_from_token
from pksweb import nesting


@dataclass
class CredentialInput:
    credential: Credential
    context: str
    field: str  # where connection errors belong: "kubeconfig" or "server"


def credential_from_input(*, kubeconfig: str = "", context: str = "", server: str = "", token: str = "",
                          ca_data: str = "", insecure_skip_tls_verify: bool = False) -> CredentialInput:
    """A credential from a kubeconfig (+ context) or from server + token (+ CA).

    Raises ValidationError on the field at fault; a kubeconfig with several contexts
    and none chosen raises on ``context`` with the names in ``params['choices']``.
    """
    if kubeconfig.strip() and (server.strip() or token.strip()):
        raise ValidationError("Give either a kubeconfig or a server URL and token, not both.")
    try:
        if kubeconfig.strip():
            _check_nesting(kubeconfig)
            chosen, credential = parse_kubeconfig(kubeconfig, context.strip() or None)
            return CredentialInput(credential, chosen, "kubeconfig")
        if server.strip() or token.strip():
            credential = credential_from_token(server=server, token=token, ca_data=ca_data,
                                               insecure_skip_tls_verify=insecure_skip_tls_verify)
            return CredentialInput(credential, "", "server")
    except KubeConfigError as exc:
        raise ValidationError({exc.field: ValidationError(exc.message, params={"choices": exc.choices})}) from None
    raise ValidationError("Give a kubeconfig, or a server URL and a bearer token.")


def _check_nesting(kubeconfig: str) -> None:
    """Refuse a kubeconfig nested deeper than any is (PyYAML's loader recurses per level and fails with
    RecursionError on ``[`` repeated a few thousand times). One over the size limit is left to the loader,
    which refuses it by size without reading it."""
    if len(kubeconfig.encode()) > MAX_KUBECONFIG_BYTES:
        return
    try:
        nesting.check_yaml(kubeconfig, what="kubeconfig")
    except nesting.TooDeep as exc:
        raise ValidationError({"kubeconfig": str(exc)}) from None
