"""webhook-router core: settings, events, topology, broker clients, log store, metrics, CLI."""

__version__ = "0.1.0"
