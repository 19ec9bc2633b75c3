"""Credentials from kubeconfigs or tokens, checked before anything connects.

pksweb runs no exec or auth-provider plugins and reads no file a kubeconfig names:
a kubeconfig pasted into a web form must not make the server run commands or read
its own disk. Everything it needs must be inline (``*-data`` fields, ``token``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

import yaml

from pksweb import nesting
from pksweb.text import bound

MAX_KUBECONFIG_BYTES = 1024 * 1024


class KubeConfigError(ValueError):
    """A kubeconfig or credential pksweb cannot use; ``field`` names the form field."""

    def __init__(self, message: str, field: str = "kubeconfig", choices: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.choices = choices or []


@dataclass(frozen=True)
class Credential:
    """Everything needed to reach one cluster. Encrypted at rest; never shown."""

    server: str
    token: str = ""
    ca_data: str = ""  # PEM text
    client_cert_data: str = ""  # PEM text
    client_key_data: str = ""  # PEM text
    insecure_skip_tls_verify: bool = False
    tls_server_name: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Credential:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def trust(self) -> str:
        """A fingerprint of whom this credential trusts to be the server: its CA, the name it checks
        and whether it checks at all (a plan's approval binds it; see ``Cluster.execution_inputs``)."""
        material = [self.ca_data.strip(), self.tls_server_name, bool(self.insecure_skip_tls_verify)]
        return hashlib.sha256(json.dumps(material).encode()).hexdigest()

    def secrets(self) -> list[str]:
        """The secret strings in this credential (to check they never leak)."""
        return [s for s in (self.token, self.client_key_data) if s]


def check_server(server: str, field: str = "server") -> str:
    server = (server or "").strip().rstrip("/")
    try:
        parsed = urlparse(server)
        parsed.port  # noqa: B018 - raises ValueError for a port that is no number or out of range
        scheme, host = parsed.scheme, parsed.hostname
    except ValueError:  # e.g. https://[::1 (an unclosed IPv6 address)
        scheme, host = "", None
    if (scheme not in ("http", "https") or not host or not server.isascii() or not server.isprintable()
            or any(ch.isspace() for ch in server)):
        raise KubeConfigError(f"The API server must be an http:// or https:// URL of printable ASCII characters, e.g. "
                              f"https://10.0.0.1:6443 or https://[fd00::1]:6443 (got {bound(server, 200)!r}).", field)
    if parsed.username or parsed.password or "@" in parsed.netloc:
        # Not echoed back: it holds a secret. The server address is shown on pages and kept in the audit trail.
        raise KubeConfigError("The API server's URL carries a user name or password (https://user:password@…): pksweb shows "
                              "server addresses on pages and in the audit trail, so give credentials as a token or a client "
                              "certificate instead.", field)
    return server


def _pem(data: str, what: str, field: str) -> str:
    """Decode base64 ``*-data`` into PEM text, or accept PEM as given."""
    text = (data or "").strip()
    if not text:
        return ""
    if not text.isascii():
        raise KubeConfigError(f"{what} holds characters that are not ASCII; PEM and base64 are ASCII text: paste the "
                              "certificate as it is, from -----BEGIN to -----END.", field)
    if text.startswith("-----BEGIN"):
        return text + "\n"
    try:
        decoded = base64.b64decode(text, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise KubeConfigError(f"{what} is neither PEM nor base64-encoded PEM.", field) from None
    if "-----BEGIN" not in decoded:
        raise KubeConfigError(f"{what} does not decode to a PEM block (-----BEGIN ...).", field)
    return decoded


def _token(token: str, field: str) -> str:
    """A bearer token as HTTP can carry it: visible ASCII, no spaces (RFC 6750's b64token is narrower still)."""
    token = (token or "").strip()
    if any(ch.isspace() for ch in token):
        raise KubeConfigError("The token contains spaces or line breaks; paste the token alone.", field)
    if token and not (token.isascii() and token.isprintable()):
        raise KubeConfigError("The token holds characters that are not printable ASCII, so no HTTP header can carry it: "
                              "paste it as `kubectl create token SERVICEACCOUNT` prints it.", field)
    return token


def credential_from_token(*, server: str, token: str, ca_data: str = "", insecure_skip_tls_verify: bool = False) -> Credential:
    """A credential from an API server URL, a bearer token and optionally a CA certificate."""
    token = _token(token, "token")
    if not token:
        raise KubeConfigError("A bearer token is required (e.g. from `kubectl create token SERVICEACCOUNT`).", "token")
    return Credential(server=check_server(server), token=token, ca_data=_pem(ca_data, "The CA certificate", "ca_data"),
                      insecure_skip_tls_verify=bool(insecure_skip_tls_verify))


def _load(text: str | bytes) -> dict[str, Any]:
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > MAX_KUBECONFIG_BYTES:
        raise KubeConfigError(f"The kubeconfig is {len(raw) // 1024} KiB; pksweb reads at most {MAX_KUBECONFIG_BYTES // 1024} KiB.")
    try:
        text = raw.decode("utf-8")
        # PyYAML's loader recurses per level: "[" a few thousand times is a RecursionError, not a refusal.
        nesting.check_yaml(text, what="kubeconfig")
        data = yaml.safe_load(text)
    except nesting.TooDeep as exc:
        raise KubeConfigError(str(exc)) from None
    except UnicodeDecodeError:
        raise KubeConfigError("The kubeconfig is not UTF-8 text.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise KubeConfigError(f"The kubeconfig is not valid YAML ({where}{problem}).") from None
    if not isinstance(data, dict):
        raise KubeConfigError("The kubeconfig must be a YAML mapping with clusters, users and contexts.")
    for section in ("clusters", "users", "contexts"):
        entries = data.get(section)
        if not isinstance(entries, list) or not entries:
            raise KubeConfigError(f"The kubeconfig has no {section} list.")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise KubeConfigError(f"{section}[{i}] must be a mapping with a name.")
            inner = section[:-1]
            if not isinstance(entry.get(inner), dict):
                raise KubeConfigError(f"{section}[{i}] ({entry['name']}) has no {inner} mapping.")
    return data


def kubeconfig_contexts(text: str | bytes) -> tuple[list[str], str]:
    """The context names in a kubeconfig and its current-context ('' if none)."""
    data = _load(text)
    current = data.get("current-context") or ""
    return [c["name"] for c in data["contexts"]], current if isinstance(current, str) else ""


def _entry(data: dict[str, Any], section: str, name: str, context: str) -> dict[str, Any]:
    for entry in data[section]:
        if entry["name"] == name:
            found: dict[str, Any] = entry[section[:-1]]
            return found
    raise KubeConfigError(f"Context {context!r} refers to {section[:-1]} {name!r}, which the kubeconfig does not define.")


def parse_kubeconfig(text: str | bytes, context: str | None = None) -> tuple[str, Credential]:
    """The chosen context's name and credential.

    Without ``context`` the current-context is used, or the only context; several
    and no current-context raise ``KubeConfigError`` with ``choices``.
    """
    data = _load(text)
    names = [c["name"] for c in data["contexts"]]
    if context:
        if context not in names:
            raise KubeConfigError(f"Unknown context {context!r}; this kubeconfig has: {', '.join(names)}.", "context", names)
        chosen = context
    elif isinstance(data.get("current-context"), str) and data["current-context"] in names:
        chosen = data["current-context"]
    elif len(names) == 1:
        chosen = names[0]
    else:
        raise KubeConfigError(f"This kubeconfig has {len(names)} contexts; pick one.", "context", names)
    ctx = next(c["context"] for c in data["contexts"] if c["name"] == chosen)
    if not isinstance(ctx.get("cluster"), str) or not isinstance(ctx.get("user"), str):
        raise KubeConfigError(f"Context {chosen!r} must name a cluster and a user.")
    cluster = _entry(data, "clusters", ctx["cluster"], chosen)
    user = _entry(data, "users", ctx["user"], chosen)

    for key in ("certificate-authority",):
        if cluster.get(key):
            raise KubeConfigError(f"Cluster {ctx['cluster']!r} points at a file ({key}: {cluster[key]}); pksweb never reads files "
                                  "from the server's disk. Inline it as certificate-authority-data (kubectl config view --raw --flatten).")
    if cluster.get("proxy-url"):
        raise KubeConfigError(f"Cluster {ctx['cluster']!r} uses a proxy-url, which pksweb does not support.")
    if user.get("exec"):
        command = (user["exec"] or {}).get("command", "?") if isinstance(user["exec"], dict) else "?"
        raise KubeConfigError(f"User {ctx['user']!r} gets its credential from an exec plugin ({command}); pksweb never runs "
                              "commands from a kubeconfig. Use a service account token instead (kubectl create token ...).")
    if user.get("auth-provider"):
        provider = (user["auth-provider"] or {}).get("name", "?") if isinstance(user["auth-provider"], dict) else "?"
        raise KubeConfigError(f"User {ctx['user']!r} uses the {provider!r} auth-provider plugin, which pksweb cannot run. "
                              "Use a service account token instead.")
    for key in ("tokenFile", "client-certificate", "client-key"):
        if user.get(key):
            raise KubeConfigError(f"User {ctx['user']!r} points at a file ({key}: {user[key]}); pksweb never reads files from "
                                  "the server's disk. Inline it (token, client-certificate-data, client-key-data).")
    if user.get("username") or user.get("password"):
        raise KubeConfigError(f"User {ctx['user']!r} uses basic auth (username/password), which Kubernetes removed in 1.19.")
    token = user.get("token") or ""
    cert, key = user.get("client-certificate-data") or "", user.get("client-key-data") or ""
    if not token and not (cert and key):
        raise KubeConfigError(f"User {ctx['user']!r} has no usable credential: give a token or client-certificate-data with client-key-data.")
    if not isinstance(token, str) or not isinstance(cert, str) or not isinstance(key, str):
        raise KubeConfigError(f"User {ctx['user']!r}: token and *-data fields must be strings.")
    insecure = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise KubeConfigError(f"Cluster {ctx['cluster']!r}: insecure-skip-tls-verify must be true or false.")
    server = check_server(str(cluster.get("server") or ""), "kubeconfig")
    server_name = cluster.get("tls-server-name") or ""
    if not isinstance(server_name, str) or len(server_name) > 253 or not server_name.isascii() or (
            server_name and not server_name.isprintable()) or " " in server_name:
        raise KubeConfigError(f"Cluster {ctx['cluster']!r}: tls-server-name must be a host name, e.g. kubernetes.default.svc.")
    return chosen, Credential(
        server=server,
        token=_token(token, "kubeconfig"),
        ca_data=_pem(str(cluster.get("certificate-authority-data") or ""), f"Cluster {ctx['cluster']!r} certificate-authority-data", "kubeconfig"),
        client_cert_data=_pem(cert, f"User {ctx['user']!r} client-certificate-data", "kubeconfig"),
        client_key_data=_pem(key, f"User {ctx['user']!r} client-key-data", "kubeconfig"),
        insecure_skip_tls_verify=insecure,
        tls_server_name=server_name,
    )


def credential_kubeconfig(credential: Credential, name: str = "cluster") -> dict[str, Any]:
    """A kubeconfig holding ``credential`` inline (for tools pksweb runs, e.g. the command driver)."""
    cluster: dict[str, Any] = {"server": credential.server}
    if credential.ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(credential.ca_data.encode()).decode()
    if credential.insecure_skip_tls_verify:
        cluster["insecure-skip-tls-verify"] = True
    if credential.tls_server_name:
        cluster["tls-server-name"] = credential.tls_server_name
    user: dict[str, Any] = {}
    if credential.token:
        user["token"] = credential.token
    if credential.client_cert_data:
        user["client-certificate-data"] = base64.b64encode(credential.client_cert_data.encode()).decode()
        user["client-key-data"] = base64.b64encode(credential.client_key_data.encode()).decode()
    return {"apiVersion": "v1", "kind": "Config", "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": name, "user": user}], "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name}
