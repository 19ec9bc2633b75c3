from __future__ import annotations

from typing import Any

from django import forms

from pksweb.fields import IdChoiceField
from tenants.models import Tenant


class AnnouncementForm(forms.Form):
    message = forms.CharField(
        max_length=500,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Maintenance on prod-eu tonight 22:00 UTC"}),
        error_messages={"required": "Write the announcement: it cannot be empty."},
    )
    tenant = IdChoiceField(
        queryset=Tenant.objects.none(), required=False, empty_label="Everyone",
        help_text="Only this tenant's people (and the platform team) will see it.",
    )

    def __init__(self, *args: Any, tenants: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if tenants is not None:
            self.fields["tenant"].queryset = tenants


def errors_into(form: forms.Form, exc: Any) -> None:
    """Put a service's ValidationError on the form: field errors on their fields, the rest on the form."""
    errors = exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
    for field, field_errors in errors.items():
        form.add_error(field if field in form.fields else None, field_errors)
