"""The CRI plugin (internal/cri of containerd v2.4.2): one module per upstream file of internal/cri/server
(sandbox_run, container_create, ...), the podsandbox controller, the image service, the instrumented
wrapper that logs each call, and a thin gRPC adapter over them."""
