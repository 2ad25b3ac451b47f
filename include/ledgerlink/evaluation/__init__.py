"""Evaluation: run a labelled benchmark through the pipeline's own code path (raw landing, dbt,
scorer and routing) and compare the decisions with the labels. Only this package reads labels;
the matcher never does."""

from ledgerlink.evaluation.bank_to_ledger import evaluate_bank_to_ledger
from ledgerlink.evaluation.report import EvaluationReport

__all__ = ["EvaluationReport", "evaluate_bank_to_ledger"]
