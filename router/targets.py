"""Which addresses webhooks may target (SSRF): checked when a URL is saved and at delivery.

``check_target`` runs when a URL is stored. DNS can change afterwards (rebinding), so the
delivery path (consumers/delivery.py) checks the addresses it actually connects to with
``forbidden_reason`` as well.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], Iterable[str]]


def resolve_host(host: str) -> list[str]:
    """Every address ``host`` resolves to (raises OSError when it does not resolve)."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def forbidden_reason(address: IPAddress) -> str | None:
    """Why the router may not call ``address`` (e.g. ``"a loopback"``), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address smuggled inside IPv6 reaches the IPv4 host it embeds.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return forbidden_reason(embedded)
        if address.is_site_local:
            return "a site-local"
    checks = (
        (address.is_unspecified, "an unspecified"),
        (address.is_loopback, "a loopback"),
        (address.is_link_local, "a link-local"),
        (address.is_multicast, "a multicast"),
        (address.is_reserved, "a reserved"),
        (address.is_private, "a private"),
        # Shared address space (100.64.0.0/10) and other non-routable blocks.
        (not address.is_global, "a non-public"),
    )
    return next((reason for failed, reason in checks if failed), None)


def refusal(host: str, address: IPAddress, reason: str) -> str:
    """The error message for a refused target."""
    shown = host if str(address) == host else f"{host} resolves to {address}"
    return f"{shown}: {reason} address; webhooks may only target public addresses"


def check_target(url: str, allow_private: bool, resolve: Resolver = resolve_host) -> None:
    """Raise ValueError when ``url``'s host is, or resolves to, a non-public address."""
    if allow_private:
        return
    host = urlsplit(url).hostname
    if not host:
        raise ValueError("URL has no host")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = _resolve(host, resolve)
    for address in addresses:
        reason = forbidden_reason(address)
        if reason is not None:
            raise ValueError(refusal(host, address, reason))


def _resolve(host: str, resolve: Resolver) -> list[IPAddress]:
    try:
        found = list(resolve(host))
    except (OSError, UnicodeError):
        raise ValueError("host does not resolve") from None
    addresses = [ipaddress.ip_address(value) for value in found]
    if not addresses:
        raise ValueError("host does not resolve")
    return addresses
