"""Retry bounds for the source tests: the bounds matter, not the waiting."""

from ledgerlink.sources.http import RetryPolicy

FAST_RETRIES = RetryPolicy(
    max_attempts=4, base_delay_seconds=0.01, max_delay_seconds=0.5, max_total_seconds=5.0
)
