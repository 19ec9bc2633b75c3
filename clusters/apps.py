from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        # access registers the rules with the policy; operations defines the node operations' tasks (workers must know them).
        from clusters import access, operations  # noqa: F401
