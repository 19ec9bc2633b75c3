from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        from clusters import (
            access,  # noqa: F401
            operations,  # noqa: F401  (defines the node operations' tasks: workers must know them)
        )
