"""SSRF checks on webhook URLs: pure, with a fake resolver."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import pytest

from router.targets import check_target, forbidden_reason


class FakeResolver:
    """Answers from a table; records every host asked; unknown hosts do not resolve."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str) -> Iterable[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10:8080/x", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "non-public"),
        ("http://[::1]/", "loopback"),
        ("http://[::]/", "unspecified"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fc00::1]/", "private"),
        ("http://[ff02::1]/", "multicast"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[2002:a00:1::]/", "private"),
    ],
)
def test_ip_literals_inside_the_network_are_refused(url: str, reason: str) -> None:
    # Given a URL whose host is a non-public IP literal
    resolver = FakeResolver({})
    # When it is checked
    # Then it is refused with the reason, without any DNS lookup
    with pytest.raises(ValueError, match=rf"an? {reason} address"):
        check_target(url, allow_private=False, resolve=resolver)
    assert resolver.asked == []


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/hooks", "http://[2606:4700:4700::1111]:8443/", "http://8.8.8.8"]
)
def test_public_ip_literals_pass(url: str) -> None:
    # Given a URL whose host is a public IP literal
    resolver = FakeResolver({})
    # When it is checked
    check_target(url, allow_private=False, resolve=resolver)
    # Then it passes without a DNS lookup
    assert resolver.asked == []


def test_names_resolving_to_public_addresses_pass() -> None:
    # Given a name resolving to public IPv4 and IPv6 addresses
    resolver = FakeResolver({"hooks.example.com": ["93.184.215.14", "2606:2800:21f::1"]})
    # When it is checked
    check_target("https://hooks.example.com/in", allow_private=False, resolve=resolver)
    # Then it passes, having been resolved
    assert resolver.asked == ["hooks.example.com"]


@pytest.mark.parametrize(
    "addresses", [["10.0.0.5"], ["93.184.215.14", "127.0.0.1"], ["fe80::1%eth0"]]
)
def test_names_resolving_inside_the_network_are_refused(addresses: list[str]) -> None:
    # Given a name with at least one non-public address
    resolver = FakeResolver({"internal.example.com": addresses})
    # When it is checked
    # Then it is refused, naming the address it resolves to
    with pytest.raises(ValueError, match=r"internal\.example\.com resolves to "):
        check_target("https://internal.example.com/", allow_private=False, resolve=resolver)


@pytest.mark.parametrize("table", [{}, {"ghost.example.com": []}])
def test_unresolvable_names_are_refused(table: dict[str, list[str]]) -> None:
    # Given a name that does not resolve (error, or no address)
    resolver = FakeResolver(table)
    # When it is checked
    # Then it is refused as not resolving
    with pytest.raises(ValueError, match=r"^host does not resolve$"):
        check_target("https://ghost.example.com/", allow_private=False, resolve=resolver)


def test_allow_private_skips_every_check() -> None:
    # Given private targets allowed
    resolver = FakeResolver({})
    # When a loopback URL and an unresolvable one are checked
    check_target("http://127.0.0.1:8080/", allow_private=True, resolve=resolver)
    check_target("http://ghost.invalid/", allow_private=True, resolve=resolver)
    # Then both pass and nothing was resolved
    assert resolver.asked == []


def test_url_without_host_is_refused() -> None:
    # Given a URL with no host
    # When it is checked
    # Then it is refused
    with pytest.raises(ValueError, match="no host"):
        check_target("http:///path", allow_private=False, resolve=FakeResolver({}))


@pytest.mark.parametrize(
    ("address", "reason"),
    [("8.8.8.8", None), ("2001:4860:4860::8888", None), ("127.0.0.1", "a loopback")],
)
def test_forbidden_reason(address: str, reason: str | None) -> None:
    # Given an address
    # When its reason is asked
    # Then public addresses have none
    assert forbidden_reason(ipaddress.ip_address(address)) == reason
