"""sioless past one machine: its production topology on hosts made of network namespaces
(:mod:`.network`, :mod:`.topology`), a load client on a host of its own (:mod:`.clients`), and the
check that runs them through the faults of a deployment across machines (``python -m bench.cluster``)."""
