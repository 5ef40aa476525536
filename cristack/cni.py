"""Pod IPs from a CNI network configuration, as a runtime's CNI plugins would hand them out.

CRI-O and containerd both hand a pod's network namespace to the CNI plugins named by a network
configuration file (libcni's ``ConfFiles``: ``.conf``, ``.conflist`` and ``.json`` in lexical order); the
IP comes from that network's IPAM. Our runtimes run no plugins: they read the same file and allocate from
its ``host-local`` range, so two nodes given two conflists with two subnets get disjoint pod IPs, exactly
as with the real plugins. Which file and which defaults a runtime uses is the runtime's own
(fake_crio/network.py, fake_containerd's CNI config).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cristack.files import ReadLimitReached, read_config
from cristack.wire.errors import ConfigError
from cristack.wording import cut

log = logging.getLogger(__name__)

# The file extensions libcni's ConfFiles accepts.
CONF_EXTENSIONS = (".conf", ".conflist", ".json")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class PodNetwork:
    """One host-local range: pod IPs are handed out from ``first`` to ``last``, never ``gateway``."""

    name: str
    subnet: Network
    first: Address
    last: Address
    gateway: Address | None
    source: str = "<built-in default>"

    def allocate(self, used: Collection[str]) -> str | None:
        """The lowest free address of the range, or None when the range is full. Walks at most
        ``len(used) + 2`` addresses, so a big subnet costs nothing."""
        ip = int(self.first)
        last = int(self.last)
        gateway = int(self.gateway) if self.gateway is not None else -1
        while ip <= last:
            text = str(ipaddress.ip_address(ip))
            if ip != gateway and text not in used:
                return text
            ip += 1
        return None

    def describe(self) -> str:
        return f"{self.first}-{self.last}"


def host_local_range(name: str, spec: dict[str, Any], source: str, key: str) -> PodNetwork:
    """A host-local ``{"subnet", "rangeStart", "rangeEnd", "gateway"}`` range; ConfigError names
    ``source`` and the JSON path ``key`` of the bad field."""
    subnet_text = spec.get("subnet")
    if not isinstance(subnet_text, str) or not subnet_text:
        raise ConfigError(source, f"{key}.subnet", "a host-local range needs a subnet such as 10.85.0.0/16")
    try:
        # host-local masks host bits off the subnet, as Go's ParseCIDR does.
        subnet = ipaddress.ip_network(subnet_text, strict=False)
    except ValueError:
        raise ConfigError(source, f"{key}.subnet", f"{subnet_text!r} is not a CIDR such as 10.85.0.0/16") from None
    if "/" not in subnet_text:
        raise ConfigError(source, f"{key}.subnet", f"{subnet_text!r} has no prefix length")
    if subnet.num_addresses < 4:
        raise ConfigError(source, f"{key}.subnet", f"network {subnet} too small to allocate from")

    def address(field: str, default: Address) -> Address:
        value = spec.get(field)
        if value is None:
            return default
        try:
            ip = ipaddress.ip_address(value) if isinstance(value, str) else None
        except ValueError:
            ip = None
        if ip is None or ip not in subnet:
            raise ConfigError(source, f"{key}.{field}", f"{value!r} is not an address in {subnet}")
        return ip

    # host-local's defaults: the range spans the subnet minus its network and broadcast
    # addresses, and the gateway is the first address.
    first = address("rangeStart", subnet.network_address + 1)
    last = address("rangeEnd", subnet.broadcast_address - 1)
    gateway = address("gateway", subnet.network_address + 1)
    if first > last:
        raise ConfigError(source, f"{key}.rangeStart", f"{first} is after rangeEnd {last}")
    return PodNetwork(name, subnet, first, last, gateway, source)


def _ipam_range(ipam: dict[str, Any], source: str, key: str) -> tuple[dict[str, Any], str]:
    """The first range of the first range set (``ranges``), or the legacy top-level fields."""
    ranges = ipam.get("ranges")
    if ranges is None:
        return ipam, key
    if not isinstance(ranges, list) or not ranges or not isinstance(ranges[0], list) or not ranges[0] \
            or not isinstance(ranges[0][0], dict):
        raise ConfigError(source, f"{key}.ranges", "expected a list of range sets, e.g. [[{\"subnet\": \"...\"}]]")
    return ranges[0][0], f"{key}.ranges[0][0]"


def network_from_file(path: Path) -> tuple[str, PodNetwork | None]:
    """The network's name and its host-local range (None when it uses another IPAM, which we
    cannot model). ConfigError names the file and the key at fault."""
    source = str(path)
    try:
        doc = json.loads(read_config(path))
    except (OSError, UnicodeDecodeError, ReadLimitReached) as err:
        raise ConfigError(source, "", f"cannot read: {cut(str(err), 200)}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(source, "", f"invalid JSON: {cut(str(err), 200)}") from None
    except RecursionError:
        raise ConfigError(source, "", "invalid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise ConfigError(source, "", "expected a CNI network configuration object")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(source, "name", "a CNI network configuration needs a name")
    if path.suffix == ".conflist":
        plugins = doc.get("plugins")
        if not isinstance(plugins, list) or not plugins:
            raise ConfigError(source, "plugins", "a .conflist needs a non-empty plugins list")
        candidates = [(p, f"plugins[{i}]") for i, p in enumerate(plugins)]
    else:
        candidates = [(doc, "")]
    for plugin, where in candidates:
        ipam = plugin.get("ipam") if isinstance(plugin, dict) else None
        if not isinstance(ipam, dict) or not ipam:
            continue
        key = f"{where}.ipam" if where else "ipam"
        if ipam.get("type") != "host-local":
            log.warning("%s: %s.type %r: pod IPs are allocated only from host-local ranges here",
                        source, key, ipam.get("type"))
            return name, None
        spec, range_key = _ipam_range(ipam, source, key)
        return name, host_local_range(name, spec, source, range_key)
    return name, None


def conf_files(network_dir: Path) -> list[Path]:
    """The network configurations in ``network_dir`` in libcni's order (lexical); none for a missing
    directory. OSError for one that cannot be read."""
    try:
        return sorted(p for p in network_dir.iterdir() if p.suffix in CONF_EXTENSIONS and p.is_file())
    except FileNotFoundError:
        return []
