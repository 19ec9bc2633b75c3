from __future__ import annotations

import django_filters

from pksweb.models import Event


class EventFilter(django_filters.FilterSet):  # type: ignore[misc]  # django-filter has no types
    """Filters of the event list (API and, later, pages)."""

    after = django_filters.NumberFilter(field_name="id", lookup_expr="gt", label="Only events with a larger id")
    kind = django_filters.CharFilter(field_name="kind", label="Exact kind, e.g. system.announcement")
    kind_prefix = django_filters.CharFilter(field_name="kind", lookup_expr="startswith", label="Kind prefix, e.g. tenant.")
    tenant = django_filters.CharFilter(field_name="tenant__name", label="Tenant name")
    subject_type = django_filters.CharFilter(field_name="subject_type")

    class Meta:
        model = Event
        fields = ["after", "kind", "kind_prefix", "tenant", "subject_type"]
