"""Validators for tenant profiles, with messages that say how to fix the value."""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

from pksweb.text import bound

QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


LARGEST = Decimal(2) ** 63 - 1  # Kubernetes counts quantities in 64-bit integers


def quantity(value: str) -> None:
    if not QUANTITY.match(str(value).strip()):
        raise ValidationError(f"{bound(value, 40)!r} is not a Kubernetes quantity: write e.g. 500m or 2 (CPU), 512Mi or 4Gi "
                              "(memory), 100 (count).")
    number = quantity_value(value)
    if number is None or number > LARGEST:
        raise ValidationError(f"{bound(value, 40)!r} is out of the range Kubernetes counts in (64-bit integers, at most "
                              "2^63 - 1): write e.g. 64, 500m or 256Gi.")


LIST_LIMIT = 100
SUFFIXES = {"m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
            "P": Decimal(10) ** 15, "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
            "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}


def quantity_value(value: str) -> Decimal | None:
    """A Kubernetes quantity as a number (500m → 0.5, 1Gi → 1073741824), or None when it is not one."""
    text = str(value).strip()
    match = QUANTITY.match(text)
    if not match:
        return None
    suffix = match.group(3) or ""
    try:
        if suffix not in SUFFIXES and suffix[:1] in ("e", "E"):  # an exponent (1e3); E and Ei alone are exa and exbi
            if abs(int(suffix[1:])) > 100:  # past any quantity Kubernetes can count (or tell from zero)
                return None
            return Decimal(text)
        return Decimal(text[:len(text) - len(suffix)] if suffix else text) * SUFFIXES.get(suffix, Decimal(1))
    except (InvalidOperation, ValueError):
        return None


def namespace_list(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and DNS_LABEL.match(v) for v in value):
        raise ValidationError("Give namespace names (DNS-1123 labels such as ingress-nginx), one per entry.")
    if len(value) > LIST_LIMIT:
        raise ValidationError(f"Give at most {LIST_LIMIT} namespaces (this list has {len(value)}); a namespace selector "
                              "label shared by them is the way to allow more.")


def cidr_list(value: Any) -> None:
    if not isinstance(value, list):
        raise ValidationError("Give a list of CIDRs such as 10.20.0.0/16.")
    if len(value) > LIST_LIMIT:
        raise ValidationError(f"Give at most {LIST_LIMIT} CIDRs (this list has {len(value)}); join neighbouring ones.")
    for cidr in value:
        try:
            ipaddress.ip_network(str(cidr), strict=True)
        except ValueError:
            raise ValidationError(f"{cidr!r} is not a CIDR (e.g. 10.20.0.0/16, host bits zero).") from None
