from django.apps import AppConfig


class UpgradesConfig(AppConfig):
    name = "upgrades"

    def ready(self) -> None:
        from clusters import hooks
        from pksweb.metrics import collect_from
        from upgrades import access  # noqa: F401
        from upgrades.engine import runs_work
        from upgrades.metrics import rollout_figures
        from upgrades.selectors import clusters_upgrading
        from upgrades.services import plans_cluster_changed, rollout_claim
        from upgrades.tasks import enqueue

        # Plans bind a cluster's upgrade inputs; a change voids their approvals (see cluster_update).
        hooks.on_execution_change(plans_cluster_changed)
        # A rollout owns its clusters: no removal, and no manual node operation while it runs.
        hooks.on_busy_check(rollout_claim)
        # The fleet page marks the clusters a rollout is upgrading.
        hooks.on_upgrading(clusters_upgrading)
        # The engine and the services decide what runs next; the tasks queue it (they import neither way back).
        runs_work(enqueue)
        # /metrics reports the rollouts, read from the database when scraped.
        collect_from(rollout_figures)
