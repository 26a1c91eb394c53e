"""The auditor's report on a mission, and the exports of its record: one package that the
CLI (``eom audit export``), the API and the console share.

``model`` builds the report (a pydantic model, every figure naming the events behind it);
``render`` lays it out as markdown, html or pdf, or writes the raw record as jsonl or csv;
``export`` takes a mission out of the event store in one of those formats.
"""
