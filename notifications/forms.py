from __future__ import annotations

from typing import Any

from django import forms

from notifications.choices import NotifyKind
from notifications.models import Channel
from pksweb import policy
from pksweb.fields import IdChoiceField
from pksweb.tenancy import tenant_model
from pksweb.types import AnyUser


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True, error_messages={"required": "Name the channel, e.g. platform-slack."})
    url = forms.CharField(max_length=2000, strip=True, label="apprise URL", widget=forms.PasswordInput(render_value=False),
                          help_text="e.g. json://hooks.example.com/pksweb, slack://…, msteams://…, mailto://…; stored "
                                    "encrypted and never shown again.",
                          error_messages={"required": "Give the channel's apprise URL."})
    tenant = IdChoiceField(queryset=tenant_model()._default_manager.none(), required=False, empty_label="Platform team",
                           help_text="A tenant's channel carries only that tenant's news, to its members.")

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["tenant"]
        assert isinstance(field, IdChoiceField)
        field.queryset = policy.restrict(user, tenant_model()._default_manager.all())


class SubscriptionForm(forms.Form):
    """One checkbox per (kind, channel) the person can be sent and may use: named ``<kind>:<channel id>``."""

    def __init__(self, *args: Any, kinds: list[NotifyKind], channels: list[Channel], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for kind in kinds:
            for channel in channels:
                self.fields[f"{kind.value}:{channel.pk}"] = forms.BooleanField(required=False, label=f"{kind.label} — {channel.name}")

    def wanted(self) -> list[tuple[str, int]]:
        pairs = []
        for field, value in self.cleaned_data.items():
            if value:
                kind, _, channel = field.partition(":")
                pairs.append((kind, int(channel)))
        return pairs
