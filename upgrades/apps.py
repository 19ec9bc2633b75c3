from django.apps import AppConfig


class UpgradesConfig(AppConfig):
    name = "upgrades"

    def ready(self) -> None:
        from clusters.services import on_execution_change
        from upgrades import access  # noqa: F401
        from upgrades.services import plans_cluster_changed

        # Plans bind a cluster's upgrade inputs; a change voids their approvals (see cluster_update).
        on_execution_change(plans_cluster_changed)
