"""Placeholder CLI until the backend lands."""
