"""The web console: server-rendered pages over the same read models and command path as
the API, served by the API's process at ``/``."""
