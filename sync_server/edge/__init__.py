"""Edge nodes: a local store that takes submissions offline and replicates them to the province over bad links."""
