"""cristack: a mock Kubernetes node (fake-kubelet -> fake-crio -> fake-conmon) for tracing."""

__version__ = "0.1.0"
