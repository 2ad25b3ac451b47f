"""The ``ledgerlink`` command: the operator's entry point."""
