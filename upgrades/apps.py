from django.apps import AppConfig


class UpgradesConfig(AppConfig):
    name = "upgrades"

    def ready(self) -> None:
        from upgrades import access  # noqa: F401
