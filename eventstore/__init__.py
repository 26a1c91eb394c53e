"""The PostgreSQL event store: the system of record.

``eventstore.models`` and ``eventstore.chain`` are free of database imports (workflow code
uses the models); ``eventstore.store`` and ``eventstore.migrations`` talk to PostgreSQL.
"""
