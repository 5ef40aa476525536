"""A sandbox's network (CRI-O's server/sandbox_network.go): its address from the CNI network's host-local
range (fake_crio/network.py)."""

from __future__ import annotations

from cristack.wire.errors import ResourceExhausted
from fake_crio.server.server import ServerBase


class SandboxNetwork(ServerBase):
    def allocate_ip(self, sid: str) -> str:
        """The lowest free address of the CNI network's host-local range, held for sandbox ``sid`` from this
        moment (as host-local IPAM leases it), so concurrent sandboxes never share one."""
        net = self.config.network
        ip = net.allocate(self.store.ips)
        if ip is None or not self.store.reserve_ip(sid, [ip]):
            # host-local's words, as CRI-O passes them on.
            raise ResourceExhausted(f"failed to allocate for range 0: no IP addresses available in range set: "
                                    f"{net.describe()} (CNI network {net.name!r}, {net.source})")
        return ip
