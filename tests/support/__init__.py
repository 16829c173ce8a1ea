"""Helpers the tests share: clients, processes and topologies, in-process servers, databases, waits."""
