"""Upgrades: plans, approvals and rollouts (issue 6)."""
