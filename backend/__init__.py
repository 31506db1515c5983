"""Symbiotic Learning Token backend."""
