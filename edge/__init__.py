"""Edge nodes: local stores that take submissions offline and replicate to the province over bad links."""
