"""Live bridge: the Coinbase adapter, the daemon and a local exchange simulator for tests."""
