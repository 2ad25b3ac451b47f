"""Matching: score candidate pairs from ``marts.match_features`` and route each source record.
It knows nothing of email: an auto-link only leaves an outbox row behind."""

from ledgerlink.matching.model import MODEL_FAMILY
from ledgerlink.matching.routing import ROUTING_STEPS, route_workspace, routing_progress
from ledgerlink.matching.scorer import score_batch

__all__ = ["MODEL_FAMILY", "ROUTING_STEPS", "route_workspace", "routing_progress", "score_batch"]
