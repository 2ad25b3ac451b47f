"""ledgerlink: reconciles Qonto and Square records with QuickBooks Online."""
