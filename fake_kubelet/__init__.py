"""fake-kubelet: static pods through the real CRI call order."""
