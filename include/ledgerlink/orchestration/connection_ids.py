"""The Airflow connection ids ledgerlink uses, importable without importing Airflow."""

QONTO_CONN_ID = "ledgerlink_qonto"
SQUARE_CONN_ID = "ledgerlink_square"
QUICKBOOKS_CONN_ID = "ledgerlink_quickbooks"
EMAIL_IN_CONN_ID = "ledgerlink_email_in"

SOURCE_CONN_IDS = {"qonto": QONTO_CONN_ID, "square": SQUARE_CONN_ID, "quickbooks": QUICKBOOKS_CONN_ID}
#: SMTP for notices to workspace owners (incidents); separate from the email-in, which may be
#: the very thing that broke.
NOTIFICATIONS_CONN_ID = "ledgerlink_notifications"
