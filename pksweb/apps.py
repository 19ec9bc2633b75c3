from django.apps import AppConfig


class PkswebConfig(AppConfig):
    name = "pksweb"
    verbose_name = "pksweb core"

    def ready(self) -> None:
        # Access classes register themselves with the one policy module.
        from pksweb import access  # noqa: F401
