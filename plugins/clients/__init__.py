"""Clients for models served elsewhere, which the model plugins in ``harness.plugins.models`` call. Not
plugins."""
