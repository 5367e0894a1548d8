"""The headless service: `assistant serve` (daemon, control API, metrics, Wyoming server)."""
