//go:build tools

// The Compose v2 CLI plugin (`docker compose`), for the real-engine compose test (scripts/compose-e2e.sh):
// Debian's docker.io has no compose v2, and its docker-compose package is the old v1.
package tools

import _ "github.com/docker/compose/v5/cmd"
