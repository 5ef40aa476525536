"""containerd's Go client as the CRI plugin uses it in-process (client/client.go, container.go, task.go,
process.go of v2.4.2): each call in the span the Go client opens, over the metadata store and the tasks
service."""
