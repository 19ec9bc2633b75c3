"""Validators for tenant profiles, with messages that say how to fix the value."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.core.exceptions import ValidationError

QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def quantity(value: str) -> None:
    if not QUANTITY.match(str(value).strip()):
        raise ValidationError(f"{value!r} is not a Kubernetes quantity: write e.g. 500m or 2 (CPU), 512Mi or 4Gi (memory), 100 (count).")


def namespace_list(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and DNS_LABEL.match(v) for v in value):
        raise ValidationError("Give namespace names (DNS-1123 labels such as ingress-nginx), one per entry.")


def cidr_list(value: Any) -> None:
    if not isinstance(value, list):
        raise ValidationError("Give a list of CIDRs such as 10.20.0.0/16.")
    for cidr in value:
        try:
            ipaddress.ip_network(str(cidr), strict=True)
        except ValueError:
            raise ValidationError(f"{cidr!r} is not a CIDR (e.g. 10.20.0.0/16, host bits zero).") from None
