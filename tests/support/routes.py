"""Every named route of the URL configuration, for tests that must walk them all."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver


def walk(resolver: URLResolver, namespace: str = "") -> list[tuple[str, list[str]]]:
    """(qualified name, parameter names) of every named route."""
    routes = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else (entry.namespace or namespace)
            routes += walk(entry, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            params = list(entry.pattern.regex.groupindex)
            if "format" in params:
                continue
            routes.append((f"{namespace}:{entry.name}" if namespace else entry.name, params))
    return sorted(set((name, tuple(params)) for name, params in routes))  # type: ignore[misc]
