"""Everything Airflow-specific: operators, connections and the Cosmos (dbt) task groups.
DAG files import from here; the rest of the package does not import Airflow."""
