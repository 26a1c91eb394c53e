"""People who use eom's console: the user directory (its changes recorded as events),
one-time sign-in links and sessions, and the sign-in e-mail."""

from accounts.directory import UserDirectory
from accounts.links import LinkRefused, SignInLinks, sign_in_url
from accounts.mail import MailError, send_sign_in_link
from accounts.sessions import Session, Sessions, StartedSession
from accounts.users import DIRECTORY_STREAM, Language, User, UserError

__all__ = [
    "DIRECTORY_STREAM",
    "Language",
    "LinkRefused",
    "MailError",
    "Session",
    "Sessions",
    "SignInLinks",
    "StartedSession",
    "User",
    "UserDirectory",
    "UserError",
    "send_sign_in_link",
    "sign_in_url",
]
