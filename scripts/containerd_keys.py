"""Writes fake_containerd/containerd_keys.py: the keys containerd v2.4.2 reads from its config.toml, table by
table, from containerd's Go sources (the ``toml:"..."`` tags of its config structs), and the ids of the plugins
it registers, so fake-containerd can tell a real key it does not model from a typo.

    python scripts/containerd_keys.py CONTAINERD_SOURCE   # github.com/containerd/containerd/v2@v2.4.2
                                                          # (go mod download -json ...: its "Dir")
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CRI = "internal/cri/config/config.go"
SERVER = "cmd/containerd/server/config/config.go"
# table (a path of TOML keys joined by "/"; "*" stands for a user-chosen name) -> (Go file, struct)
TABLES = {
    "": (SERVER, "Config"),
    "debug": (SERVER, "Debug"),
    "grpc": (SERVER, "GRPCConfig"),
    "ttrpc": (SERVER, "TTRPCConfig"),
    "metrics": (SERVER, "MetricsConfig"),
    "cgroup": (SERVER, "CgroupConfig"),
    "proxy_plugins/*": (SERVER, "ProxyPlugin"),
    "stream_processors/*": (SERVER, "StreamProcessor"),
    "plugins/io.containerd.server.v1.grpc": ("plugins/server/grpc/plugin.go", "config"),
    "plugins/io.containerd.server.v1.grpc-tcp": ("plugins/server/grpc/plugin.go", "tcpConfig"),
    "plugins/io.containerd.server.v1.ttrpc": ("plugins/server/ttrpc/plugin.go", "config"),
    "plugins/io.containerd.cri.v1.images": (CRI, "ImageConfig"),
    "plugins/io.containerd.cri.v1.images/image_decryption": (CRI, "ImageDecryption"),
    "plugins/io.containerd.cri.v1.images/registry": (CRI, "Registry"),
    "plugins/io.containerd.cri.v1.images/registry/mirrors/*": (CRI, "Mirror"),
    "plugins/io.containerd.cri.v1.images/registry/configs/*": (CRI, "RegistryConfig"),
    "plugins/io.containerd.cri.v1.images/registry/configs/*/auth": (CRI, "AuthConfig"),
    "plugins/io.containerd.cri.v1.images/registry/auths/*": (CRI, "AuthConfig"),
    "plugins/io.containerd.cri.v1.images/runtime_platforms/*": (CRI, "ImagePlatform"),
    "plugins/io.containerd.cri.v1.runtime": (CRI, "RuntimeConfig"),
    "plugins/io.containerd.cri.v1.runtime/containerd": (CRI, "ContainerdConfig"),
    "plugins/io.containerd.cri.v1.runtime/containerd/runtimes/*": (CRI, "Runtime"),
    "plugins/io.containerd.cri.v1.runtime/cni": (CRI, "CniConfig"),
    "plugins/io.containerd.grpc.v1.cri": (CRI, "ServerConfig"),
    "plugins/io.containerd.grpc.v1.cri/x509_key_pair_streaming": (CRI, "X509KeyPairStreaming"),
}
# Tables whose keys are names the user chooses, with values of any shape (a map[string]... in Go).
FREE = ["timeouts", "plugins/io.containerd.cri.v1.images/pinned_images",
        "plugins/io.containerd.cri.v1.images/registry/headers"]
# runc's options (api/types/runc/options/oci.proto, Options): the runtime table's `options` are decoded into
# it by Go field name.
RUNC_OPTIONS = "plugins/io.containerd.cri.v1.runtime/containerd/runtimes/*/options"
TAG = re.compile(r'`[^`]*toml:"([^",]+)')
REGISTER = re.compile(r"registry\.Register\(&plugin\.Registration\{(.*?)\n\t\}\)", re.S)


def struct_keys(source: Path, name: str) -> list[str]:
    text = source.read_text()
    m = re.search(rf"^type {name} struct \{{\n(.*?)^\}}", text, re.S | re.M)
    if m is None:
        raise SystemExit(f"{source}: no struct {name}")
    keys = []
    for line in m.group(1).splitlines():
        t = TAG.search(line)
        if t and t.group(1) != "-":
            keys.append(t.group(1))
    return keys


def runc_options(api: Path) -> list[str]:
    text = (api / "types/runc/options/oci.pb.go").read_text()
    m = re.search(r"^type Options struct \{\n(.*?)^\}", text, re.S | re.M)
    assert m is not None
    return re.findall(r"^\t([A-Z]\w*) ", m.group(1), re.M)


def plugin_ids(root: Path) -> list[str]:
    """type.id of every plugin registered with a literal or known-constant type and id."""
    types = dict(re.findall(r"^\t(\w+) plugin\.Type = \"([^\"]+)\"", (root / "plugins/types.go").read_text(), re.M))
    services = dict(re.findall(r"^\t(\w+) = \"([^\"]+)\"", (root / "plugins/services/services.go").read_text(),
                               re.M))
    ids = set()
    for f in root.rglob("*.go"):
        if f.name.endswith("_test.go") or "/vendor/" in str(f):
            continue
        text = f.read_text()
        consts = dict(re.findall(r"\b(\w+)\s*=\s*\"([^\"]+)\"", text))
        for block in REGISTER.findall(text):
            t = re.search(r"Type:\s*plugins\.(\w+)", block)
            i = re.search(r"ID:\s*(?:\"([^\"]+)\"|services\.(\w+)|(\w+),)", block)
            if t and i and t.group(1) in types:
                ident = i.group(1) or services.get(i.group(2) or "") or consts.get(i.group(3) or "")
                if ident:
                    ids.add(f"{types[t.group(1)]}.{ident}")
    return sorted(ids)


def main(source: str, api: str | None = None) -> None:
    root = Path(source)
    if api is None:
        api = str(next(root.parent.glob("api@*")))
    tables = {table: sorted(struct_keys(root / f, s)) for table, (f, s) in TABLES.items()}
    tables[RUNC_OPTIONS] = sorted(runc_options(Path(api)))
    lines = ['"""The keys containerd v2.4.2 reads from config.toml, by table, and the plugins it registers',
             "(generated by scripts/containerd_keys.py from cmd/containerd/server/config, internal/cri/config,",
             'plugins/server and api/types/runc/options; do not edit). A table is its path of TOML keys joined by "/";',
             '"*" stands for a name the user chooses."""', "",
             "TABLE_KEYS: dict[str, frozenset[str]] = {"]
    for table, keys in tables.items():
        lines += [f"    {table!r}: frozenset({{", *(f"        {k!r}," for k in keys), "    }),"]
    lines += ["}", "", "FREE_TABLES: frozenset[str] = frozenset({", *(f"    {t!r}," for t in FREE), "})", "",
              "PLUGIN_IDS: frozenset[str] = frozenset({"]
    lines += [f"    {i!r}," for i in plugin_ids(root)]
    lines.append("})")
    Path("fake_containerd/containerd_keys.py").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
