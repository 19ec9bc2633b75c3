"""Tenants: customers sharing the fleet, their members and (later) namespaces."""
