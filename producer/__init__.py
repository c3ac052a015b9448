"""Publish rows of TSV, CSV or JSON Lines files as events on the input topic."""
