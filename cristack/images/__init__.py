"""Images every runtime of ours shares: the built-in catalogue (what the pretend registries serve), image
references, and the node's store of pulled images. How a runtime lays its images out on disk (CRI-O's
containers/storage, containerd's content store) stays with the runtime."""
