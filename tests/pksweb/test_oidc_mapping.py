"""Groups to roles and tenant memberships (``pksweb.oidc.mapping``), and single sign-on's settings: the rules
by example, then with generated group names and patterns (no crash; a group no pattern matches gives nothing)."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given, settings
from hypothesis import strategies as st

from pksweb.oidc.config import oidc_settings
from pksweb.oidc.mapping import MappingError, parse_rule, parse_rules, resolve

RULES = parse_rules("""
    platform-ops = operator      # the platform team
    change-board = approver
    k8s-*-readers = viewer
    k8s-tenant-{tenant}-admins = admin:{tenant}
    k8s-tenant-{tenant}-viewers = viewer:{tenant}
    auditors = viewer:acme-bank
""")


@pytest.mark.parametrize(("groups", "role", "memberships"), [
    (["platform-ops"], "operator", {}),
    (["change-board", "k8s-eu-readers"], "approver", {}),
    (["k8s-eu-readers"], "viewer", {}),
    (["k8s-tenant-acme-bank-admins"], "tenant-admin", {"acme-bank": "admin"}),
    (["k8s-tenant-acme-bank-viewers", "k8s-tenant-acme-bank-admins"], "tenant-admin", {"acme-bank": "admin"}),
    (["auditors"], "tenant-admin", {"acme-bank": "viewer"}),
    (["Platform-Ops", "platform-ops-x", "xplatform-ops", "k8s-tenant-Acme-admins", "k8s-tenant--admins"], "", {}),
    (["k8s-tenant-a.b-admins", 42, None, {"x": 1}], "", {}),
])
def test_rules_by_example(groups, role, memberships):
    grant = resolve(groups, RULES)
    assert grant.user_role == role and grant.memberships == memberships


@pytest.mark.parametrize("text", ["platform-ops", "= operator", "x = root", "x = admin:Bad_Name", "x = admin:{tenant}",
                                  "{tenant}-{tenant} = admin:{tenant}", "x = admin"])
def test_a_wrong_rule_is_named(text):
    with pytest.raises(MappingError):
        parse_rule(text)


def test_settings_stop_start_up_on_a_mistake():
    assert not oidc_settings({}).enabled
    with pytest.raises(ImproperlyConfigured, match="PKSWEB_OIDC_CLIENT_ID"):
        oidc_settings({"PKSWEB_OIDC_ISSUER": "https://idp.example"})
    with pytest.raises(ImproperlyConfigured, match="PKSWEB_OIDC_GROUP_MAP"):
        oidc_settings({"PKSWEB_OIDC_ISSUER": "https://idp.example", "PKSWEB_OIDC_CLIENT_ID": "c",
                       "PKSWEB_OIDC_GROUP_MAP": "ops = root"})
    with pytest.raises(ImproperlyConfigured, match="PKSWEB_LOCAL_LOGIN=0 needs PKSWEB_OIDC_ISSUER"):
        oidc_settings({"PKSWEB_LOCAL_LOGIN": "0"})
    found = oidc_settings({"PKSWEB_OIDC_ISSUER": "https://idp.example/", "PKSWEB_OIDC_CLIENT_ID": "c",
                           "PKSWEB_LOCAL_LOGIN": "0", "PKSWEB_OIDC_GROUPS_CLAIM": "roles"})
    assert found.discovery_url == "https://idp.example/.well-known/openid-configuration"
    assert not found.local_login and found.groups_claim == "roles"


group_names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
pattern_pieces = st.lists(st.one_of(st.text(alphabet="abcz-_.*+?()[]\\$^|", min_size=1, max_size=6), st.just("*")), max_size=4)


@settings(max_examples=200, deadline=None)
@given(pieces=pattern_pieces, with_tenant=st.booleans(), groups=st.lists(group_names, max_size=8),
       target=st.sampled_from(["operator", "approver", "viewer", "admin:{tenant}", "viewer:{tenant}", "admin:acme"]))
def test_generated_patterns_never_crash_and_grant_only_what_matches(pieces, with_tenant, groups, target):
    pattern = "".join(pieces) + ("{tenant}-x" if with_tenant else "")
    pattern = pattern.replace("=", "").replace(";", "").replace("#", "").strip()
    try:
        rules = parse_rules(f"{pattern} = {target}")
    except MappingError:
        assert not pattern or ("{tenant}" in target and "{tenant}" not in pattern)
        return
    grant = resolve(groups, rules)
    # The same pattern read as a plain glob (``*`` any run, ``{tenant}`` a DNS label): no other group may match.
    glob = "".join(".*" if p == "*" else "(?P<t>[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)" if p == "{tenant}" else re.escape(p)
                   for p in re.split(r"(\*|\{tenant\})", pattern))
    matching = [g for g in groups if re.fullmatch(glob, g)]
    assert set(grant.matched) == set(matching)
    if not matching:
        assert not grant.any and grant.user_role == ""
    for tenant in grant.memberships:
        assert tenant == "acme" or any(re.fullmatch(glob, g) and re.fullmatch(glob, g).group("t") == tenant for g in matching)


@settings(max_examples=200, deadline=None)
@given(groups=st.lists(group_names, max_size=20))
def test_generated_groups_outside_the_rules_give_nothing(groups):
    """Groups that are not exactly a mapped name, or a tenant pattern around a valid tenant name, give nothing."""
    outside = [g for g in groups if g not in ("platform-ops", "change-board", "auditors")
               and not re.fullmatch(r"k8s-.*-readers|k8s-tenant-[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?-(admins|viewers)", g)]
    assert not resolve(outside, RULES).any
