"""The config API: webhooks, keys, logs and their admin pages."""
