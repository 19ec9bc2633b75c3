from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict

from clusters.credentials import CredentialInput, credential_from_input


class CredentialFields(forms.Form):
    """How pksweb reaches the cluster: a kubeconfig, or server + token (+ CA)."""

    kubeconfig = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
                                 help_text="Paste a kubeconfig (kubectl config view --raw --flatten --minify) or upload one.")
    kubeconfig_file = forms.FileField(required=False, label="or upload a kubeconfig")
    context = forms.CharField(required=False, help_text="Which context, when the kubeconfig has several.")
    server = forms.CharField(required=False, label="API server URL", widget=forms.TextInput(attrs={"placeholder": "https://10.0.0.1:6443"}))
    token = forms.CharField(required=False, label="Bearer token", widget=forms.PasswordInput(render_value=False))
    ca_data = forms.CharField(required=False, label="CA certificate (PEM or base64)", widget=forms.Textarea(attrs={"rows": 4}))
    insecure_skip_tls_verify = forms.BooleanField(required=False, label="Skip TLS verification (not for production)")

    credential_required = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.credential_input: CredentialInput | None = None
        self.context_choices: list[str] = []

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        upload = data.get("kubeconfig_file")
        kubeconfig = data.get("kubeconfig") or ""
        if upload:
            if upload.size > 1024 * 1024:
                self.add_error("kubeconfig_file", "The file is larger than 1 MiB; that is not a kubeconfig.")
                return data
            kubeconfig = upload.read().decode("utf-8", errors="replace")
        given = kubeconfig.strip() or (data.get("server") or "").strip() or (data.get("token") or "").strip()
        if not given and not self.credential_required:
            return data
        try:
            self.credential_input = credential_from_input(
                kubeconfig=kubeconfig, context=data.get("context") or "", server=data.get("server") or "",
                token=data.get("token") or "", ca_data=data.get("ca_data") or "",
                insecure_skip_tls_verify=bool(data.get("insecure_skip_tls_verify")))
        except ValidationError as exc:
            errors = exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
            for field, field_errors in errors.items():
                if field == "context":
                    self.context_choices = (field_errors[0].params or {}).get("choices", [])
                self.add_error(field if field in self.fields else None, field_errors)
            if self.context_choices and upload:
                # Keep the uploaded kubeconfig for the second step, where the user picks a context.
                kept = self.data.copy() if isinstance(self.data, QueryDict) else dict(self.data)
                kept["kubeconfig"] = kubeconfig
                self.data = kept
        return data


class ClusterRegisterForm(CredentialFields):
    name = forms.CharField(max_length=63, help_text="A short DNS-style name, e.g. prod-eu-1.")
    field_order = ["name", "kubeconfig", "kubeconfig_file", "context", "server", "token", "ca_data", "insecure_skip_tls_verify"]


class ClusterEditForm(CredentialFields):
    name = forms.CharField(max_length=63)
    credential_required = False
    field_order = ["name", "kubeconfig", "kubeconfig_file", "context", "server", "token", "ca_data", "insecure_skip_tls_verify"]


class NodeOperationForm(forms.Form):
    timeout_seconds = forms.IntegerField(required=False, min_value=10, max_value=86400,
                                         help_text="How long a drain keeps retrying evictions a PodDisruptionBudget refuses.")
