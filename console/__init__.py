"""What people use: the operator JSON API, indicator and report routes (and the officers' console)."""
