"""Turning what a person typed (form or API) into a checked ``Credential``."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError

from clusters.kube import Credential, KubeConfigError, parse_kubeconfig
from clusters.kube.credentials import credential_from_token


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
            chosen, credential = parse_kubeconfig(kubeconfig, context.strip() or None)
            return CredentialInput(credential, chosen, "kubeconfig")
        if server.strip() or token.strip():
            credential = credential_from_token(server=server, token=token, ca_data=ca_data,
                                               insecure_skip_tls_verify=insecure_skip_tls_verify)
            return CredentialInput(credential, "", "server")
    except KubeConfigError as exc:
        raise ValidationError({exc.field: ValidationError(exc.message, params={"choices": exc.choices})}) from None
    raise ValidationError("Give a kubeconfig, or a server URL and a bearer token.")
