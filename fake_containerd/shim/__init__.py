"""fake-containerd-shim-runc-v2: containerd's runc shim (cmd/containerd-shim-runc-v2 and pkg/shim of
containerd v2.4.2), one process per pod, serving the task v3 service over ttrpc and running the pod's
containers through the library's container monitor.

- ``main``: the command line containerd runs (``-namespace NS -address ADDR -publish-binary BIN -id ID
  start|delete``, ``-v``), and the daemon process the start command leaves behind;
- ``manager``: the start protocol (BootstrapParams in, BootstrapResult out, one socket per pod group)
  and ``delete``'s cleanup (manager/manager_linux.go);
- ``bundle``: what the shim reads from an OCI bundle (config.json, init.pid);
- ``service``: the task service (task/service.go), a plain core with a ttrpc method table;
- ``publisher``: events back to containerd over ttrpc (pkg/shim/publisher.go);
- ``daemon``: the serving process: telemetry (the shim_tracing build by default), the ttrpc server,
  shutdown.
"""
