from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        # access registers the rules with the policy; operations defines the node operations' tasks (workers must know them).
        from clusters import access, operations  # noqa: F401
        from clusters.metrics import fleet_figures, sweep_figures
        from pksweb.metrics import collect_from

        # /metrics reports the fleet and the sweep, read from the database when scraped.
        collect_from(fleet_figures)
        collect_from(sweep_figures)
