"""Where a hosted sandbox may send: Spine's deliveries to suppliers' MHS endpoints must not reach the host's own
network (server-side request forgery).

In hosted mode an endpoint whose address is loopback, link-local (169.254.0.0/16 and fe80::/10, where cloud metadata
services answer), private (RFC 1918, fc00::/7, shared 100.64.0.0/10), unspecified or otherwise not globally
routable is refused, at registration and again at send time: the host name is resolved when the message is sent and
the connection goes to the address that was checked, so a name that re-resolves ("DNS rebinding") to a private
address is refused too. SANDBOX_DELIVERY_ALLOW lists the exceptions (comma-separated host names, addresses or
CIDRs), e.g. a supplier's MHS on the same private network as the sandbox.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# RFC 1918, unique local IPv6, and carrier-grade NAT's shared space (the provider's network, not the internet).
PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
                                                   "100.64.0.0/10"))


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: Address) -> bool:
        return any(address in network for network in self.networks if network.version == address.version)


def allow_list(text: str) -> AllowList:
    """SANDBOX_DELIVERY_ALLOW parsed: each item an address or CIDR (a network), else a host name."""
    hosts, networks = set(), []
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower().rstrip("."))
    return AllowList(frozenset(hosts), tuple(networks))


def forbidden_kind(address: Address) -> str | None:
    """Why the address is not one a hosted sandbox sends to (the rule's name), or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (169.254.0.0/16, fe80::/10: where cloud metadata services answer)"
    if any(address in network for network in PRIVATE if network.version == address.version):
        return "a private address (RFC 1918, fc00::/7, 100.64.0.0/10)"
    if address.is_multicast or not address.is_global:
        return "a special-purpose address (multicast, reserved or otherwise not globally routable)"
    return None


def port_of(parts: SplitResult) -> int:
    """The URL's port, or its scheme's default; raises Refused for a port that is not one (e.g. :99999)."""
    try:
        port = parts.port
    except ValueError:
        raise Refused(f"the port in {parts.netloc[:80]!r} is not a port number (1-65535)") from None
    return port or (443 if parts.scheme == "https" else 80)


def _resolve(host: str, port: int) -> list[Address]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))


resolver = _resolve  # how names are resolved (tests replace it to play a DNS server)


class Refused(ValueError):
    """The destination may not be reached from a hosted sandbox; the message names the rule and the setting."""


def destination(host: str, port: int, allow: AllowList, resolve: Callable[[str, int], list[Address]] | None = None,
                *, unresolved_ok: bool = False) -> Address | None:
    """The address to connect to for `host`: checked against the rules, every address the name resolves to (one
    forbidden address refuses the name: it could be the one used). Raises Refused. With unresolved_ok (at
    registration), a name that does not resolve yet is let through (None): it is checked again when sent to."""
    host = host.strip("[]")
    resolve = resolve or resolver
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if allow.allows_host(host):
        return literal if literal is not None else _first(host, port, resolve, unresolved_ok)
    addresses = [literal] if literal is not None else None
    if addresses is None:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError, ValueError) as exc:
            if unresolved_ok:
                return None
            raise Refused(f"the host name {host!r} does not resolve ({exc})") from None
    for address in addresses:
        kind = forbidden_kind(address)
        if kind is not None and not allow.allows_address(address):
            named = f"{host!r}" if literal is not None else f"{host!r} (which resolves to {address})"
            raise Refused(f"{named} is {kind}: a hosted sandbox does not send to the host's own network. The "
                          "operator may allow it with SANDBOX_DELIVERY_ALLOW (comma-separated hosts or CIDRs)")
    if not addresses:
        raise Refused(f"the host name {host!r} resolves to no address")
    return addresses[0]


def _first(host: str, port: int, resolve, unresolved_ok: bool) -> Address | None:
    try:
        found = resolve(host, port)
    except (OSError, UnicodeError, ValueError):
        if unresolved_ok:
            return None
        raise Refused(f"the host name {host!r} does not resolve") from None
    if not found:
        raise Refused(f"the host name {host!r} resolves to no address")
    return found[0]
