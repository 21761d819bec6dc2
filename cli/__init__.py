"""The operator CLI, `carecheck`: mounts each package's sub-commands."""
