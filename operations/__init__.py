"""What the API and the web console do, for an authenticated principal: one layer beneath
both faces, so that every console action is also an API route with the same rules.

Each operation takes an ``api.tokens.Principal`` (a token's, or a signed-in person's with
the API's five roles and scopes), checks its role for the route it serves
(``api.access.ROUTE_ROLES``) and the mission's scope, and answers a plain model that
each face renders its own way. Refusals are ``api.errors.ApiError`` (the API answers them
as they are; the console shows them); bad input names its field with ``InvalidInput``.
The computations behind them (``coverage``, ``reminders``, ``verify``, ``replay``) take no
principal: the CLI, which acts as the operator, calls them directly.
"""

from operations.commands import CommandAnswer, CommandOperations, DryRun
from operations.errors import InvalidInput, UnknownMission
from operations.service import Operations

__all__ = [
    "CommandAnswer",
    "CommandOperations",
    "DryRun",
    "InvalidInput",
    "Operations",
    "UnknownMission",
]
