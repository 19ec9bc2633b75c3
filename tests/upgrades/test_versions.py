"""Versions are ASCII digits: Python's ``\\d`` and ``str.isdigit`` also take other scripts' digits
(``١.٣٢.٠``, fullwidth ``１.３３.０``), which a plan once accepted and rolled out onto every node."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrades import versions

# Decimal digits of every script but ASCII's, and the other characters isdigit() answers True for.
FOREIGN_DIGITS = st.characters(categories=["Nd", "No"]).filter(lambda c: not c.isascii())
ASCII_NUMBER = st.integers(min_value=0, max_value=999).map(str)


@given(st.text(max_size=40))
def test_a_parsed_version_is_made_of_ascii_digits(text):
    parsed = versions.parse(text)
    if parsed is not None:
        core = text.strip().lstrip("v")
        assert core.isascii() and tuple(int(p) for p in core.replace("+", "-").split("-")[0].split(".")) == parsed


@given(st.lists(ASCII_NUMBER, min_size=3, max_size=3), st.integers(min_value=0, max_value=2), FOREIGN_DIGITS)
def test_one_foreign_digit_anywhere_is_no_version(parts, where, digit):
    assert versions.parse(".".join(parts)) is not None
    parts[where] = parts[where] + digit
    assert versions.parse(".".join(parts)) is None


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["١.٣٢.٠", "１.３３.０", "1.3².0"])
def test_the_plan_api_refuses_a_version_in_other_digits(fleet, operator_api, target):
    clusters, _ = fleet
    answer = operator_api.post("/api/upgrade-plans/", {"name": "fz", "target_version": target, "waves": [[clusters[0].pk]]},
                               format="json")
    assert answer.status_code == 400 and "is not a Kubernetes version" in str(answer.json()["target_version"]), answer.content
