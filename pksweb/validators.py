from django.core.validators import RegexValidator

dns_label = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
    "Use lower-case letters, digits and '-', starting and ending with a letter or digit "
    "(at most 63 characters, a DNS-1123 label).",
)
