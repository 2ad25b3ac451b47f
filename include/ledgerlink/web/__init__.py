"""The review queue, record audit trail and integration status pages, served inside Airflow."""
