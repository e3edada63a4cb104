"""Real test devices the tests start and stop: SSH servers, snmpd, network namespaces."""
