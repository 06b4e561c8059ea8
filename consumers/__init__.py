"""Delivery workers: consume webhook queues and POST events to their endpoints."""
