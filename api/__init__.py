"""The HTTP API (FastAPI, under ``/v1``) for coordinators, heads of mission, observers,
member states and auditors."""
