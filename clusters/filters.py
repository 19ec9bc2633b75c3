"""One FilterSet for the fleet page and the cluster list API."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from clusters.choices import ClusterStatus
from clusters.models import Cluster


class ClusterFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter ships no types
    status = django_filters.ChoiceFilter(choices=ClusterStatus.choices, empty_label="any status")
    version = django_filters.CharFilter(method="filter_version", label="Version (e.g. 1.30 or 1.30.4)")
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")

    class Meta:
        model = Cluster
        fields = ["status", "version", "name"]

    def filter_version(self, queryset: QuerySet[Cluster], name: str, value: str) -> QuerySet[Cluster]:
        value = value.strip().lstrip("v")
        if not value:
            return queryset
        return queryset.filter(version=value) | queryset.filter(version__startswith=value.rstrip(".") + ".")
