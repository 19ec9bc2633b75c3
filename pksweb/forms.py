from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from pksweb import policy
from pksweb.fields import IdChoiceField
from pksweb.tenancy import tenant_model
from pksweb.types import AnyUser


class AnnouncementForm(forms.Form):
    message = forms.CharField(
        max_length=500,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Maintenance on prod-eu tonight 22:00 UTC"}),
        error_messages={"required": "Write the announcement: it cannot be empty."},
    )
    tenant = IdChoiceField(
        queryset=tenant_model()._default_manager.none(), required=False, empty_label="Everyone",
        help_text="Only this tenant's people (and the platform team) will see it.",
    )

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        """The tenants to choose from are those ``user`` may see."""
        super().__init__(*args, **kwargs)
        tenant = cast(IdChoiceField, self.fields["tenant"])
        tenant.queryset = policy.restrict(user, tenant_model()._default_manager.all())


def errors_into(form: forms.BaseForm, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form: field errors on their fields, the rest on the form."""
    errors = exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
    for field, field_errors in errors.items():
        form.add_error(field if field in form.fields else None, field_errors)
