"""What tests and benchmarks share: the production-shaped stack, the embedded server, a Redis of one's own, ports,
waits, browsers, clients, sockets, drivers. Fixtures stay in conftest files."""
