"""The SSRF policy: which host names and addresses an HTTP job may call."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronkeeper.domain.failures import FailureReason
from cronkeeper.domain.ssrf import (
    BLOCKED_V4_NETWORKS,
    METADATA_ADDRESSES,
    SsrfPolicy,
    check_address,
    check_hostname,
)

DEFAULT = SsrfPolicy()
BLOCKED = FailureReason.SSRF_BLOCKED
LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: The ranges the brief names, spelled out independently of the module's own table.
NAMED_V4_RANGES = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "0.0.0.0/8",
]
NAMED_V6_RANGES = ["::1/128", "::/128", "fe80::/10", "fec0::/10", "fc00::/7", "ff00::/8"]

v4 = st.ip_addresses(v=4)
v6 = st.ip_addresses(v=6)
blocked_v4 = st.sampled_from(NAMED_V4_RANGES + [str(n) for n in BLOCKED_V4_NETWORKS]).flatmap(
    lambda network: st.ip_addresses(network=network)
)
blocked_v6 = st.sampled_from(NAMED_V6_RANGES).flatmap(
    lambda network: st.ip_addresses(network=network)
)
any_address = st.one_of(v4, v6)


def mapped(address: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(f"::ffff:{address}")


def six_to_four(address: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80))


def nat64(address: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(int(NAT64.network_address) | int(address))


@given(blocked_v4)
def test_every_private_ipv4_address_is_blocked_by_default(address: ipaddress.IPv4Address) -> None:
    assert check_address(DEFAULT, address) is BLOCKED
    assert check_address(DEFAULT, str(address)) is BLOCKED


@given(blocked_v6)
def test_every_private_ipv6_address_is_blocked_by_default(address: ipaddress.IPv6Address) -> None:
    assert check_address(DEFAULT, address) is BLOCKED


@given(blocked_v4)
def test_ipv6_spellings_of_a_private_ipv4_address_are_blocked(
    address: ipaddress.IPv4Address,
) -> None:
    for spelling in (mapped(address), six_to_four(address), nat64(address)):
        assert check_address(DEFAULT, spelling) is BLOCKED, spelling


@given(v4)
def test_an_ipv4_mapped_address_is_judged_as_its_ipv4_address(
    address: ipaddress.IPv4Address,
) -> None:
    assert check_address(DEFAULT, mapped(address)) == check_address(DEFAULT, address)


@given(v4)
def test_whatever_the_standard_library_calls_non_global_is_blocked(
    address: ipaddress.IPv4Address,
) -> None:
    if not address.is_global or address.is_multicast or address.is_reserved:
        assert check_address(DEFAULT, address) is BLOCKED
    if check_address(DEFAULT, address) is None:
        assert address.is_global


@given(v6)
def test_ipv6_outside_public_ranges_is_blocked(address: ipaddress.IPv6Address) -> None:
    special = (
        address.is_loopback
        or address.is_link_local
        or address.is_site_local
        or address.is_multicast
        or address.is_unspecified
        or address in ipaddress.ip_network("fc00::/7")
    )
    outside = special or address not in ipaddress.ip_network("2000::/3")
    judged_by_ipv4 = address.ipv4_mapped is not None or address in NAT64
    if outside and not judged_by_ipv4:
        assert check_address(DEFAULT, address) is BLOCKED


@pytest.mark.parametrize(
    "address",
    [
        *[str(a) for a in METADATA_ADDRESSES],
        "169.254.169.254",
        "fd00:ec2::254",
        "0.0.0.0",
        "::",
        "::1",
        "127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of the metadata address
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "fec0::1",
        "fc00::1",
        "fe80::1%eth0",
        "ff02::1",
        "100.64.0.1",
        "100.127.255.255",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "2001:db8::1",
    ],
)
def test_named_dangerous_addresses_are_blocked(address: str) -> None:
    assert check_address(DEFAULT, address) is BLOCKED


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "2002:808:808::1",  # 6to4 of a public address
        "64:ff9b::808:808",  # NAT64 of a public address
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert check_address(DEFAULT, address) is None


@given(v4)
def test_allowing_loopback_v4_opens_exactly_loopback_v4(address: ipaddress.IPv4Address) -> None:
    policy = SsrfPolicy.from_settings_values("127.0.0.0/8", "", "")
    expected = None if address in LOOPBACK_V4 else check_address(DEFAULT, address)
    assert check_address(policy, address) == expected


def test_allowing_loopback_v4_keeps_ipv6_loopback_blocked() -> None:
    policy = SsrfPolicy.from_settings_values("127.0.0.0/8", "", "")
    assert check_address(policy, "::1") is BLOCKED
    assert check_address(policy, "10.0.0.1") is BLOCKED
    assert check_address(policy, "::ffff:127.0.0.1") is None  # the same host as 127.0.0.1


@given(any_address)
def test_allow_private_opens_every_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    policy = SsrfPolicy.from_settings_values("1", "", "")
    assert check_address(policy, address) is None


@given(any_address, st.integers(min_value=0, max_value=128), st.booleans())
def test_the_deny_list_always_wins(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int, allow_all: bool
) -> None:
    network = ipaddress.ip_network(f"{address}/{min(prefix, address.max_prefixlen)}", strict=False)
    allow = "1" if allow_all else str(network)
    policy = SsrfPolicy.from_settings_values(allow, "", str(network))
    assert check_address(policy, address) is FailureReason.BLOCKED_IP
    if isinstance(address, ipaddress.IPv4Address):
        assert check_address(policy, mapped(address)) is FailureReason.BLOCKED_IP
        assert check_address(policy, six_to_four(address)) is FailureReason.BLOCKED_IP


def test_settings_values_parse_into_a_policy() -> None:
    policy = SsrfPolicy.from_settings_values(" 127.0.0.1/32, ::1 ", "Evil.Example., *.corp", "")
    assert not policy.allow_private
    assert policy.allowed_networks == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    assert policy.denied_hostnames == frozenset({"evil.example", "*.corp"})
    assert SsrfPolicy.from_settings_values("1", "", "").allow_private
    assert SsrfPolicy.from_settings_values("", "", "") == SsrfPolicy()


@pytest.mark.parametrize(
    ("allow", "deny_ips", "needle"),
    [
        ("10.0.0.0/33", "", "allow_private: '10.0.0.0/33'"),
        ("", "10.0.0.1, nope", "deny_ips: 'nope'"),
    ],
)
def test_a_bad_cidr_is_refused_with_a_clear_message(allow: str, deny_ips: str, needle: str) -> None:
    with pytest.raises(ValueError, match="is not an IP address or CIDR network") as info:
        SsrfPolicy.from_settings_values(allow, "", deny_ips)
    assert needle in str(info.value)


def test_check_address_refuses_what_is_not_an_address() -> None:
    with pytest.raises(ValueError):
        check_address(DEFAULT, "localhost")


def test_deny_listed_host_names_match_case_insensitively_without_the_trailing_dot() -> None:
    policy = SsrfPolicy.from_settings_values("", "metadata.google.internal, *.corp.example", "")
    for host in ("metadata.google.internal", "METADATA.Google.Internal.", "a.corp.example"):
        assert check_hostname(policy, host) is FailureReason.BLOCKED_HOSTNAME, host
    for host in ("google.internal", "corp.example", "xcorp.example", "example.com"):
        assert check_hostname(policy, host) is None, host


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(st.lists(labels, min_size=1, max_size=4), st.booleans())
def test_a_wildcard_denies_every_subdomain(parts: list[str], shout: bool) -> None:
    policy = SsrfPolicy.from_settings_values("", "*.internal.example", "")
    host = ".".join([*parts, "internal", "example"])
    assert check_hostname(policy, host.upper() if shout else host + ".") is not None
    assert check_hostname(policy, ".".join([*parts, "internal", "example", "org"])) is None


def test_the_default_policy_denies_no_host_name() -> None:
    assert check_hostname(DEFAULT, "localhost") is None
