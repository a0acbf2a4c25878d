"""The SSRF policy of HTTP jobs: which host names and addresses a job may call.

Pure rules, applied by the HTTP executor to the URL's host name before anything else
and to every address the name resolves to (and to IP-literal URLs) before connecting.

- Deny lists win over everything: a deny-listed name is `blocked_hostname`, an address
  inside a deny-listed network (or embedding one) is `blocked_ip`.
- Otherwise an address that is not publicly routable is `ssrf_blocked` — private,
  loopback, link-local (cloud metadata 169.254.169.254), carrier-grade NAT, multicast,
  reserved, unspecified, documentation ranges; for IPv6 everything outside global
  unicast 2000::/3 (loopback, unique-local fc00::/7 with metadata fd00:ec2::254,
  link-local, site-local fec0::/10, multicast, IPv4-compatible) plus Teredo/IETF
  2001::/23 and documentation. IPv4-mapped (::ffff:a.b.c.d) addresses are judged as
  the IPv4 address they are; 6to4 (2002::/16) and NAT64 (64:ff9b::/96) addresses are
  blocked when the IPv4 address they embed is.
- `allow_private` (or an address inside `allowed_networks`) lifts the SSRF block.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from cronkeeper.domain.failures import FailureReason

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

#: IPv4 ranges that are not publicly routable (RFC 6890 and friends).
BLOCKED_V4_NETWORKS: tuple[ipaddress.IPv4Network, ...] = (
    _V4("0.0.0.0/8"),  # "this network", includes the unspecified 0.0.0.0
    _V4("10.0.0.0/8"),
    _V4("100.64.0.0/10"),  # carrier-grade NAT (Alibaba metadata 100.100.100.200)
    _V4("127.0.0.0/8"),
    _V4("169.254.0.0/16"),  # link-local: AWS/GCP/Azure metadata 169.254.169.254
    _V4("172.16.0.0/12"),
    _V4("192.0.0.0/24"),  # IETF protocol assignments (Oracle metadata 192.0.0.192)
    _V4("192.0.2.0/24"),
    _V4("192.88.99.0/24"),  # 6to4 relay anycast
    _V4("192.168.0.0/16"),
    _V4("198.18.0.0/15"),
    _V4("198.51.100.0/24"),
    _V4("203.0.113.0/24"),
    _V4("224.0.0.0/4"),  # multicast
    _V4("240.0.0.0/4"),  # reserved, includes broadcast 255.255.255.255
)
#: The only IPv6 space that is publicly routable unicast.
GLOBAL_UNICAST_V6 = _V6("2000::/3")
#: Non-routable ranges inside 2000::/3.
BLOCKED_V6_NETWORKS: tuple[ipaddress.IPv6Network, ...] = (
    _V6("2001::/23"),  # IETF protocol assignments, includes Teredo 2001::/32
    _V6("2001:db8::/32"),  # documentation
    _V6("3fff::/20"),  # documentation
)
#: Cloud metadata endpoints (all inside the blocked ranges; named for the tests and docs).
METADATA_ADDRESSES: tuple[Address, ...] = (
    ipaddress.IPv4Address("169.254.169.254"),
    ipaddress.IPv4Address("100.100.100.200"),
    ipaddress.IPv4Address("192.0.0.192"),
    ipaddress.IPv6Address("fd00:ec2::254"),
)
_NAT64 = _V6("64:ff9b::/96")
_IPV4_COMPATIBLE = _V6("::/96")
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class SsrfPolicy:
    """What HTTP jobs may call; the default blocks every non-public address."""

    allow_private: bool = False
    allowed_networks: tuple[Network, ...] = ()
    denied_hostnames: frozenset[str] = frozenset()  # lower-case; "*.suffix" for subdomains
    denied_networks: tuple[Network, ...] = ()

    @classmethod
    def from_settings_values(cls, allow_private: str, deny_hosts: str, deny_ips: str) -> SsrfPolicy:
        """Build from the CRONKEEPER_ALLOW_PRIVATE / DENY_HOSTS / DENY_IPS strings.

        `allow_private` is "" (block), "1" (allow all private ranges) or a comma-separated
        CIDR list; raises ValueError naming the setting and the entry on a bad CIDR.
        """
        flag = allow_private.strip().lower()
        allowed: tuple[Network, ...] = ()
        if flag not in _TRUE_WORDS and flag not in _FALSE_WORDS:
            allowed = parse_networks(allow_private, setting="allow_private")
        return cls(
            allow_private=flag in _TRUE_WORDS,
            allowed_networks=allowed,
            denied_hostnames=frozenset(_split_hostnames(deny_hosts)),
            denied_networks=parse_networks(deny_ips, setting="deny_ips"),
        )


def parse_networks(value: str, *, setting: str) -> tuple[Network, ...]:
    """Parse a comma-separated list of IPs/CIDRs; ValueError names the bad entry."""
    networks: list[Network] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as error:
            raise ValueError(
                f"{setting}: {entry!r} is not an IP address or CIDR network ({error})"
            ) from None
    return tuple(networks)


def normalize_hostname(host: str) -> str:
    """Lower-case, without the trailing dot, IDNA-encoded when possible."""
    name = host.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _split_hostnames(value: str) -> Iterator[str]:
    for entry in (part.strip() for part in value.split(",")):
        if entry.startswith("*."):
            yield "*." + normalize_hostname(entry[2:])
        elif entry:
            yield normalize_hostname(entry)


@lru_cache(maxsize=4096)
def check_hostname(policy: SsrfPolicy, host: str) -> FailureReason | None:
    """BLOCKED_HOSTNAME when `host` is deny-listed (exactly, or as a subdomain of "*.x")."""
    name = normalize_hostname(host)
    if name in policy.denied_hostnames:
        return FailureReason.BLOCKED_HOSTNAME
    labels = name.split(".")
    for index in range(1, len(labels)):
        if "*." + ".".join(labels[index:]) in policy.denied_hostnames:
            return FailureReason.BLOCKED_HOSTNAME
    return None


def parse_address(ip: Address | str) -> Address:
    """An address without its IPv6 zone ("fe80::1%eth0" → fe80::1); ValueError if not one."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = str(ip)
    if isinstance(ip, str):
        return ipaddress.ip_address(ip.split("%", 1)[0].strip("[]"))
    return ip


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64, Teredo)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def equivalent_addresses(address: Address) -> tuple[Address, ...]:
    """The address itself, then the IPv4 address it embeds, if any."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return (address, inner)
    return (address,)


def is_public_address(address: Address) -> bool:
    """True for publicly routable unicast addresses (mapped/6to4/NAT64: by their IPv4)."""
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in network for network in BLOCKED_V4_NETWORKS)
    inner = embedded_ipv4(address)
    if address.ipv4_mapped is not None or address in _NAT64:
        return inner is not None and is_public_address(inner)
    if address not in GLOBAL_UNICAST_V6 or any(address in n for n in BLOCKED_V6_NETWORKS):
        return False
    return inner is None or is_public_address(inner)


def _is_allowed(policy: SsrfPolicy, address: Address) -> bool:
    if policy.allow_private:
        return True
    candidates: tuple[Address, ...] = (address,)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates = (address, address.ipv4_mapped)  # the same host, spelled in IPv6
    return any(c in network for c in candidates for network in policy.allowed_networks)


def check_address(policy: SsrfPolicy, ip: Address | str) -> FailureReason | None:
    """BLOCKED_IP (deny list, wins), SSRF_BLOCKED (non-public, not allowed) or None.

    Raises ValueError when `ip` is not an IP address.
    """
    address = parse_address(ip)
    candidates = equivalent_addresses(address)
    if any(c in network for c in candidates for network in policy.denied_networks):
        return FailureReason.BLOCKED_IP
    if _is_allowed(policy, address) or is_public_address(address):
        return None
    return FailureReason.SSRF_BLOCKED
