"""The wire: endpoints and sockets, the gRPC server, errors as status codes, length-prefixed frames,
ttrpc (containerd's RPC to and from its shims), the generated CRI, conmon.v1, containerd and ttrpc
protobufs (pb) and their generator (protogen)."""
