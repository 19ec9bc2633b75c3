"""Kubeconfig parsing, fuzzed: whatever is pasted, a clear refusal or a credential — never a crash,
never a command run, never a file of the server's read."""

from __future__ import annotations

import builtins
import io
import os
import subprocess
from contextlib import contextmanager
from unittest.mock import patch

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from clusters.kube.credentials import MAX_KUBECONFIG_BYTES, Credential, KubeConfigError, parse_kubeconfig

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)
plugin_fields = st.sampled_from(["exec", "auth-provider", "tokenFile", "client-certificate", "client-key"])


@contextmanager
def no_side_effects():
    """While parsing: no process started, no file opened."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"parsing a kubeconfig touched the system: {args[:1]}")

    with patch.object(subprocess, "Popen", refuse), patch.object(os, "system", refuse), patch.object(builtins, "open", refuse), \
            patch.object(io, "open", refuse):
        yield


def parse(text):
    with no_side_effects():
        return parse_kubeconfig(text)


def parses_or_refuses(text) -> None:
    try:
        name, credential = parse(text)
    except KubeConfigError as exc:
        assert exc.message.strip() and exc.field in ("kubeconfig", "context", "server")
        return
    assert isinstance(name, str) and isinstance(credential, Credential) and credential.server.startswith(("http://", "https://"))


def kubeconfig(cluster=None, user=None, context=None, **top) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": cluster if cluster is not None else {"server": "https://10.0.0.1:6443"}}],
            "users": [{"name": "u", "user": user if user is not None else {"token": "t"}}],
            "contexts": [{"name": "c", "context": context if context is not None else {"cluster": "k", "user": "u"}}], **top}


@settings(max_examples=200, deadline=None, database=None)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=400)))
def test_arbitrary_text(text):
    parses_or_refuses(text)


@settings(max_examples=300, deadline=None, database=None)
@given(cluster=values, user=values, context=values, extra=st.dictionaries(st.sampled_from(["clusters", "users", "contexts",
                                                                                           "current-context", "preferences"]),
                                                                          values, max_size=2))
def test_wrong_types_anywhere(cluster, user, context, extra):
    parses_or_refuses(yaml.safe_dump({**kubeconfig(cluster, user, context), **extra}))


@settings(max_examples=100, deadline=None, database=None)
@given(field=plugin_fields, value=values)
def test_plugins_and_file_paths_are_refused_never_used(field, value):
    config = kubeconfig(user={"token": "t", field: value if value not in (None, "", [], {}, False, 0) else "/etc/shadow"})
    with pytest.raises(KubeConfigError) as refused:
        parse(yaml.safe_dump(config))
    assert "never" in refused.value.message or "plugin" in refused.value.message


@settings(max_examples=50, deadline=None, database=None)
@given(path=st.text(min_size=1, max_size=60))
def test_a_certificate_authority_file_is_never_read(path):
    with pytest.raises(KubeConfigError, match="never reads files"):
        parse(yaml.safe_dump(kubeconfig(cluster={"server": "https://10.0.0.1:6443", "certificate-authority": path})))


def test_huge_and_hostile_yaml_is_refused():
    with pytest.raises(KubeConfigError, match="reads at most"):
        parse("a: " + "x" * (MAX_KUBECONFIG_BYTES + 10))
    bomb = "a: &a [" + ",".join(["x"] * 10) + "]\n" + "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 10) + "]\n"
                                                               for p, c in zip("abcdefgh", "bcdefghi", strict=False))
    parses_or_refuses(bomb)  # a billion laughs: refused in words, not expanded until memory runs out
    parses_or_refuses("!!python/object/apply:os.system ['echo owned']")
