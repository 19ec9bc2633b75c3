"""Kubeconfig parsing: everything pksweb refuses, it refuses in words, and runs/reads nothing."""

from __future__ import annotations

import base64

import pytest
import yaml

from clusters.kube import KubeConfigError, kubeconfig_contexts, parse_kubeconfig
from clusters.kube.credentials import credential_from_token

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"


def kubeconfig(user: dict | None = None, cluster: dict | None = None, contexts: int = 1, current: str | None = "one") -> str:
    names = ["one", "two", "three"][:contexts]
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://10.0.0.1:6443"}}],
        "users": [{"name": "u", "user": user if user is not None else {"token": "abc"}}],
        "contexts": [{"name": n, "context": {"cluster": "c", "user": "u"}} for n in names],
        **({"current-context": current} if current else {}),
    })


def test_token_kubeconfig():
    context, credential = parse_kubeconfig(kubeconfig(cluster={"server": "https://10.0.0.1:6443/",
                                                               "certificate-authority-data": base64.b64encode(CA_PEM.encode()).decode()}))
    assert context == "one"
    assert credential.server == "https://10.0.0.1:6443" and credential.token == "abc" and credential.ca_data == CA_PEM


def test_malformed_yaml_names_line_and_column():
    with pytest.raises(KubeConfigError) as exc:
        parse_kubeconfig("apiVersion: v1\nclusters:\n  - name: a\n   cluster: {server: x}\n")
    assert exc.value.message.startswith("The kubeconfig is not valid YAML (line 4, column ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("apiVersion: v1\n", "has no clusters list"),
        (yaml.safe_dump({"clusters": [{"name": "c"}], "users": [{"name": "u", "user": {}}], "contexts": [{"name": "x", "context": {}}]}),
         "clusters[0] (c) has no cluster mapping"),
        (yaml.safe_dump({"clusters": ["oops"], "users": [], "contexts": []}), "clusters[0] must be a mapping with a name"),
    ],
)
def test_wrong_shapes(text, message):
    with pytest.raises(KubeConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        parse_kubeconfig(text)


def test_unknown_context_lists_the_known_ones():
    with pytest.raises(KubeConfigError) as exc:
        parse_kubeconfig(kubeconfig(contexts=2), "prod")
    assert exc.value.field == "context" and exc.value.choices == ["one", "two"]
    assert exc.value.message == "Unknown context 'prod'; this kubeconfig has: one, two."


def test_several_contexts_without_current_asks_to_pick():
    with pytest.raises(KubeConfigError) as exc:
        parse_kubeconfig(kubeconfig(contexts=3, current=None))
    assert exc.value.choices == ["one", "two", "three"] and "pick one" in exc.value.message
    assert parse_kubeconfig(kubeconfig(contexts=3, current=None), "two")[0] == "two"
    assert kubeconfig_contexts(kubeconfig(contexts=2)) == (["one", "two"], "one")


def test_exec_plugin_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    text = kubeconfig(user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "sh",
                                     "args": ["-c", f"touch {marker}"]}})
    with pytest.raises(KubeConfigError) as exc:
        parse_kubeconfig(text)
    assert "exec plugin (sh)" in exc.value.message and "never runs commands" in exc.value.message
    assert not marker.exists()


def test_auth_provider_is_refused():
    with pytest.raises(KubeConfigError, match="'gcp' auth-provider plugin"):
        parse_kubeconfig(kubeconfig(user={"auth-provider": {"name": "gcp"}}))


@pytest.mark.parametrize(
    ("user", "cluster", "key"),
    [
        ({"tokenFile": "/etc/hostname"}, None, "tokenFile"),
        ({"client-certificate": "/etc/hostname", "client-key": "/etc/hostname"}, None, "client-certificate"),
        ({"token": "x"}, {"server": "https://a:6443", "certificate-authority": "/etc/hostname"}, "certificate-authority"),
    ],
)
def test_file_references_are_never_read(user, cluster, key):
    with pytest.raises(KubeConfigError) as exc:
        parse_kubeconfig(kubeconfig(user=user, cluster=cluster))
    assert f"({key}: /etc/hostname)" in exc.value.message and "never reads files" in exc.value.message


@pytest.mark.parametrize(
    ("user", "cluster", "message"),
    [
        ({"username": "admin", "password": "secret"}, None, "basic auth"),
        ({}, None, "has no usable credential"),
        ({"token": "x"}, {"server": "ftp://10.0.0.1"}, "must be an http:// or https:// URL"),
        ({"token": "x"}, {"server": "https://a:6443", "certificate-authority-data": "not base64!"}, "neither PEM nor base64"),
        ({"token": "x"}, {"server": "https://a:6443", "insecure-skip-tls-verify": "yes"}, "must be true or false"),
        ({"token": ["x"]}, None, "must be strings"),
    ],
)
def test_unusable_credentials(user, cluster, message):
    with pytest.raises(KubeConfigError, match=message):
        parse_kubeconfig(kubeconfig(user=user, cluster=cluster))


def test_huge_and_binary_files():
    with pytest.raises(KubeConfigError, match="at most 1024 KiB"):
        parse_kubeconfig("a" * (1024 * 1024 + 1))
    with pytest.raises(KubeConfigError, match="not UTF-8"):
        parse_kubeconfig(b"\xff\xfe\x00bad")


def test_token_credential_checks():
    with pytest.raises(KubeConfigError, match="bearer token is required"):
        credential_from_token(server="https://a:6443", token=" ")
    with pytest.raises(KubeConfigError, match="contains spaces"):
        credential_from_token(server="https://a:6443", token="two words")
    with pytest.raises(KubeConfigError) as exc:
        credential_from_token(server="10.0.0.1", token="t")
    assert exc.value.field == "server"
    assert credential_from_token(server="https://a:6443", token="t", ca_data=CA_PEM).ca_data == CA_PEM
