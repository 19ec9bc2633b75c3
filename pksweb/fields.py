"""Form fields that choose objects by id, for ids of any text: one that is no id a database can hold
(past a bigint, not ASCII digits) is "not one of the choices", never a database error (a 500)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from pksweb.text import bound

LARGEST_ID = 2**63 - 1


def an_id(value: Any) -> bool:
    """Whether ``value`` reads as an id a database can hold (ASCII digits, 1 to a bigint)."""
    text = str(value).strip()
    return text.isascii() and text.isdigit() and 0 < int(text) <= LARGEST_ID


# Django's form classes take no type argument at run time (the stubs' generics exist for mypy only).
class IdChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def to_python(self, value: Any) -> Any:
        if value not in self.empty_values and not an_id(value):
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class IdsChoiceField(forms.ModelMultipleChoiceField):  # type: ignore[type-arg]
    default_error_messages = {"invalid_pk_value": "“%(pk)s” is not one of the choices: pick from the list."}

    def _check_values(self, value: Any) -> Any:
        for pk in value:
            if not an_id(pk):
                raise ValidationError(self.error_messages["invalid_pk_value"], code="invalid_pk_value",
                                      params={"pk": bound(pk, 30)})
        return super()._check_values(value)  # type: ignore[misc]  # missing from the stubs
