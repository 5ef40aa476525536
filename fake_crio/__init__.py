"""fake-crio: a mock CRI-O serving the CRI (runtime.v1)."""
