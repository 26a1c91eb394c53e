"""People who use eom's console: the user directory (its changes recorded as events),
one-time sign-in links and sessions."""
