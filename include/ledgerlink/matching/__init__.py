"""Matching: score candidate pairs from ``marts.match_features`` and route each source record.
It knows nothing of email: an auto-link only leaves an outbox row behind."""

from ledgerlink.matching.routing import route_workspace
from ledgerlink.matching.scorer import MODEL_VERSION, score_records

__all__ = ["MODEL_VERSION", "route_workspace", "score_records"]
