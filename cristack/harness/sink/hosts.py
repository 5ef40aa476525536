"""Which Host names the sink's HTTP listener answers to: the defence against DNS rebinding.

A page on any site can make the browser send requests to 127.0.0.1:4318 (it cannot read the answers), and with
DNS rebinding (its own name re-pointed at 127.0.0.1) it can read them too, but only while the request's Host
is the page's own name. So the sink answers IP literals, ``localhost`` and ``*.localhost``, the name it was
told to listen on, and the names the user allows (``--allowed-hosts``); anything else gets 403. This is the
check of Vite's dev server (``server.allowedHosts``, packages/vite/src/node/server/middlewares/hostCheck.ts,
through host-validation-middleware): IP addresses and localhost always pass, a listed ``.example.com`` allows
the domain and its subdomains, ``*`` allows every name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from cristack.wording import cut


def host_name(header: str) -> str:
    """The name in a Host header (no port, no IPv6 brackets, lower case, no trailing dot)."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    name, sep, port = value.rpartition(":")
    if sep and port.isdigit():
        value = name
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AllowedHosts:
    """The Host names one listener answers to (see the module's docstring)."""

    def __init__(self, listen_host: str = "", extra: Iterable[str] = ()) -> None:
        names = {host_name(n) for n in extra if n.strip()}
        self.any = "*" in names
        self.exact = {n for n in names if not n.startswith(".")}
        self.domains = {n for n in names if n.startswith(".")}
        listen = host_name(listen_host) if listen_host else ""
        if listen and not _is_ip(listen):
            self.exact.add(listen)

    def allows(self, header: str | None) -> bool:
        """Whether a request with this Host header is answered (a request without one names nothing a page could
        have re-pointed: HTTP/1.0 clients send none)."""
        if header is None or self.any:
            return True
        name = host_name(header)
        if _is_ip(name) or name == "localhost" or name.endswith(".localhost") or name in self.exact:
            return True
        return any(name == d[1:] or name.endswith(d) for d in self.domains)

    def refusal(self, header: str) -> str:
        name = cut(host_name(header), 80)
        return (f"Blocked request: the Host {name!r} is not one this sink answers to (IP addresses and localhost "
                f"are; a name that a web page could point at this machine is not). To allow it, start the sink "
                f"with --allowed-hosts {name}.")
