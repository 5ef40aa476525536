"""containerd's task runtime: the shim manager and the shims' ttrpc task API (core/runtime/v2), the tasks service
the Go client calls in-process (plugins/services/tasks/local.go), and the ttrpc events service shims publish to
(plugins/services/events, ttrpc)."""
