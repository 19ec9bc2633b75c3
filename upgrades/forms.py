from __future__ import annotations

from typing import Any

from django import forms

from clusters.choices import UpgradeDriver
from clusters.models import Cluster
from upgrades.rules import COMMENT_LIMIT


class WavesField(forms.Field):
    """One wave per line, cluster names separated by commas (the first line is the canary)."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "staging-1\nprod-eu-1, prod-us-1"})

    def to_python(self, value: Any) -> list[list[int]]:
        text = str(value).strip() if value not in self.empty_values else ""
        names = {c.name: c.pk for c in Cluster.objects.only("pk", "name")}
        waves = []
        for number, line in enumerate([line for line in text.splitlines() if line.strip()], start=1):
            wave = []
            for name in (part.strip() for part in line.split(",") if part.strip()):
                if name not in names:
                    raise forms.ValidationError(f"Wave {number}: no cluster is called {name!r}.")
                wave.append(names[name])
            waves.append(wave)
        if not waves:
            raise forms.ValidationError("Give at least one wave: one line of cluster names.")
        return waves

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, list):
            names = dict(Cluster.objects.values_list("pk", "name"))
            return "\n".join(", ".join(names.get(c, str(c)) for c in wave) for wave in value)
        return value or ""


class PlanForm(forms.Form):
    name = forms.CharField(max_length=200)
    target_version = forms.CharField(max_length=20, help_text="e.g. 1.31.2")
    waves = WavesField()
    max_unavailable = forms.IntegerField(min_value=1, initial=1, label="Nodes at once per cluster",
                                         help_text="Workers drained at the same time in each cluster (control-plane nodes always go one by one).")
    drain_timeout_seconds = forms.IntegerField(min_value=10, initial=300)
    node_ready_timeout_seconds = forms.IntegerField(min_value=10, initial=600)
    health_gate = forms.BooleanField(required=False, initial=True)
    soak_seconds = forms.IntegerField(min_value=0, initial=0, help_text="Pause between waves.")
    window_start = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    window_end = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    window_weekly = forms.BooleanField(required=False, label="Recurring every week")
    quorum = forms.IntegerField(min_value=1, initial=1, help_text="Approvals needed.")


class DecisionForm(forms.Form):
    revision = forms.CharField(widget=forms.HiddenInput)
    comment = forms.CharField(required=False, max_length=COMMENT_LIMIT,
                              widget=forms.TextInput(attrs={"placeholder": "comment (required to reject)"}))


class StartForm(forms.Form):
    outside_window_reason = forms.CharField(required=False, max_length=2000,
                                            widget=forms.TextInput(attrs={"placeholder": "e.g. urgent CVE fix agreed with the change board"}))


class DriverForm(forms.Form):
    upgrade_driver = forms.ChoiceField(choices=UpgradeDriver.choices, required=False)
    upgrade_command = forms.CharField(required=False, help_text="Command driver: arguments separated by spaces; {cluster}, {node}, {version}.")
