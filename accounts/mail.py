"""The sign-in e-mail: a one-time link, in the person's language, through the SMTP relay
the reminders use (``activities.delivery``: ``DeliverySettings``, ``email_message``,
``send_email``). The link is in the mail's body only; no log line carries it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from temporalio.exceptions import ApplicationError

from accounts.users import Language, User
from activities.delivery import DeliverySettings, email_message, send_email

log = structlog.get_logger("eom.accounts")


class MailError(Exception):
    """The sign-in e-mail could not be sent; ``retryable`` when the relay was down, slow
    or busy (trying later may work), not when it refused the address for good. The
    message names the relay and the address, never the link."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class _Text:
    subject: str
    greeting: str
    body: str
    until: str
    ignore: str


_TEXTS: dict[Language, _Text] = {
    Language.en: _Text(
        subject="Your sign-in link to eom",
        greeting="Dear {name},",
        body="Open this link to sign in to the eom console. It works once.",
        until="It expires at {expires}.",
        ignore="If you did not ask for it, ignore this message; nobody can sign in without it.",
    ),
    Language.ru: _Text(
        subject="Ваша ссылка для входа в eom",
        greeting="Уважаемый(ая) {name},",
        body="Откройте эту ссылку, чтобы войти в консоль eom. Она действует один раз.",
        until="Срок её действия истекает {expires}.",
        ignore="Если вы её не запрашивали, не обращайте внимания на это письмо; "
        "без ссылки войти нельзя.",
    ),
    Language.tr: _Text(
        subject="eom giriş bağlantınız",
        greeting="Sayın {name},",
        body="eom konsoluna giriş yapmak için bu bağlantıyı açın. Yalnızca bir kez çalışır.",
        until="Geçerlilik süresi {expires} tarihinde sona erer.",
        ignore="Bu bağlantıyı siz istemediyseniz bu iletiyi dikkate almayın; "
        "bağlantı olmadan kimse giriş yapamaz.",
    ),
}


def sign_in_mail(user: User, url: str, *, expires_at: datetime | None = None) -> tuple[str, str]:
    """The e-mail's subject and body (plain text) in ``user.language``; ``expires_at``
    (aware), when given, is said in UTC."""
    text = _TEXTS[user.language]
    lines = [text.greeting.format(name=user.name), "", text.body, "", url, ""]
    if expires_at is not None:
        moment = expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines += [text.until.format(expires=moment), ""]
    lines.append(text.ignore)
    return text.subject, "\n".join(lines) + "\n"


async def send_sign_in_link(
    user: User,
    url: str,
    settings: DeliverySettings,
    *,
    expires_at: datetime | None = None,
) -> None:
    """E-mail ``url`` (a sign-in link, ``accounts.links.sign_in_url``) to ``user.email``
    in the user's language, through the relay ``settings`` name. Raises ``MailError``
    when the relay refuses or cannot be reached, or the mail cannot be composed."""
    subject, body = sign_in_mail(user, url, expires_at=expires_at)
    try:
        mail = email_message(
            message_id=f"sign-in.{uuid.uuid4().hex}",
            mail_from=settings.mail_from,
            to_address=user.email,
            to_name=user.name,
            subject=subject,
            body=body,
            language=user.language.value,
        )
        await send_email(settings, mail, address=user.email)
    except ApplicationError as error:
        log.warning("sign-in link not sent", user_id=str(user.user_id), error=error.message)
        raise MailError(error.message, retryable=not error.non_retryable) from None
    log.info("sign-in link sent", user_id=str(user.user_id), language=user.language.value)
