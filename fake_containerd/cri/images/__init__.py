"""The CRI plugin's image service (internal/cri/server/images)."""
