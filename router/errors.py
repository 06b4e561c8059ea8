"""The router's exceptions, under one root.

RouterError
├── ConfigurationError        a setting is missing or malformed
│   └── EncryptionKeyError    stored secrets cannot be decrypted with the configured keys
├── InvalidEvent              a message on the bus breaks the envelope contract
├── BrokerUnavailable         RabbitMQ refused or dropped us (retry later)
├── PublishRejected           the broker nacked or could not route a publish
└── DeliveryError             one HTTP attempt failed
    ├── EndpointTimeout       retryable: no answer in time
    ├── EndpointUnavailable   retryable: connection refused, reset, DNS, TLS
    └── TargetForbidden       the URL points somewhere we may not call
"""

from __future__ import annotations


class RouterError(Exception):
    """Root of every error raised by webhook-router."""


class ConfigurationError(RouterError):
    """A setting is missing or malformed; the message names the variable."""


class EncryptionKeyError(ConfigurationError):
    """A stored secret does not decrypt with the configured keys, or no key was configured."""


class InvalidEvent(RouterError):
    """A message on the bus that can never be delivered; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class BrokerUnavailable(RouterError):
    """RabbitMQ could not be reached or closed the connection."""


class PublishRejected(RouterError):
    """The broker nacked a publish, or returned it as unroutable."""


class DeliveryError(RouterError):
    """One HTTP delivery attempt failed before a response was read."""


class EndpointTimeout(DeliveryError):
    """The endpoint did not answer within the delivery timeout."""


class EndpointUnavailable(DeliveryError):
    """The endpoint refused, reset or could not be resolved or reached."""


class TargetForbidden(DeliveryError):
    """The URL resolves to an address the router is not allowed to call."""
