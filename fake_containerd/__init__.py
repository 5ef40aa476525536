"""fake-containerd: a mock containerd v2.4 (the CRI plugin, its Go client, the metadata store, image pulls and
the runc shim manager), serving the CRI on its gRPC socket and running each pod through a shim process of its own
over ttrpc, with the spans the real containerd records (tests/data/real/containerd/)."""
