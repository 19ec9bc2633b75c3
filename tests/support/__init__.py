"""What tests and benchmarks share: waits, ports, processes, sockets, drivers. Fixtures stay in conftest files."""
