"""Which client address a request counts against."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Protocol

from django.conf import settings


class _Request(Protocol):
    @property
    def META(self) -> Mapping[str, Any]: ...


def client_address(request: _Request) -> str:
    """The address of the client that sent the request, as counted by rate limits.

    The connection's own address (REMOTE_ADDR) unless `MICE_TRUSTED_PROXIES` says how many proxies of
    ours stand in front: each of them appends the address it received the request from to
    X-Forwarded-For, so the client is the entry that many places from the right (REMOTE_ADDR being the
    nearest proxy). Everything to its left was written by the client and is never believed, or anyone
    could pick a fresh address per request. IPv6 addresses count per /64 prefix, since one host
    usually has a whole /64 to pick addresses from.
    """
    remote = str(request.META.get("REMOTE_ADDR") or "")
    candidate = remote
    proxies = int(settings.MICE_TRUSTED_PROXIES)
    if proxies > 0:
        forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
        chain = [hop.strip() for hop in forwarded.split(",") if hop.strip()] + [remote]
        candidate = chain[max(0, len(chain) - 1 - proxies)]
    address = _parse(candidate) or _parse(remote)
    if address is None:
        return remote[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().split("%", 1)[0])  # an IPv6 zone ("%eth0") is not part of it
    except ValueError:
        return None
