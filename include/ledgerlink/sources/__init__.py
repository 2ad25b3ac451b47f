"""Source clients: Qonto, Square and QuickBooks Online (read only). They know nothing of matching."""
