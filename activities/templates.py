"""What a reminder says, in the recipient's language: pure functions, no I/O.

Member states are written to in their own language where a translation exists, and in
English otherwise: a missing translation must never stop a reminder from going. Every
text names the mission, what is asked, the deadline (UTC, so that nobody has to guess a
time zone) and how to answer: a request or reminder gives its recipient's answer link
when the delivery activity made one; an escalation, which goes to someone else, never does.

The remaining time in a reminder is computed from ``now``; the delivery activity passes
the time the reminder was scheduled, so that every retry of one message says the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.values import DeadlineKind, DeliveryPurpose

DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Template:
    subject: str
    body: str


_FOOTER = {
    "en": "This message was sent automatically by eom on behalf of {organisation}.",
    "ru": "Это сообщение отправлено автоматически системой eom от имени {organisation}.",
    "tr": "Bu mesaj {organisation} adına eom tarafından otomatik olarak gönderilmiştir.",
}

_ANSWER = {"en": "How to answer: {answer_hint}", "ru": "Как ответить: {answer_hint}"}
_ANSWER["tr"] = "Nasıl yanıt verilir: {answer_hint}"

# With an answer link: the link on the answer line (alone after it, so that mail readers
# make it clickable), what it is, and the other way to answer.
_ANSWER_LINK = {
    "en": (
        "How to answer: {answer_url}\n"
        "This link is yours alone: please do not forward it. It works until "
        "{answer_expires}, or until the answer is given.\n"
        "Or: {answer_hint}"
    ),
    "ru": (
        "Как ответить: {answer_url}\n"
        "Эта ссылка предназначена только для вас: пожалуйста, не пересылайте её. Она "
        "действует до {answer_expires} или до получения ответа.\n"
        "Или: {answer_hint}"
    ),
    "tr": (
        "Nasıl yanıt verilir: {answer_url}\n"
        "Bu bağlantı yalnızca size özeldir: lütfen başkasına iletmeyiniz. {answer_expires} "
        "tarihine kadar ya da yanıt verilene kadar geçerlidir.\n"
        "Ya da: {answer_hint}"
    ),
}

# What is asked, per kind, as it reads after "to" (English only: the escalation and the
# kinds other than nomination have no translation yet).
_TASK = {
    DeadlineKind.nomination: 'nominate observers for the mission "{mission_name}"',
    DeadlineKind.acknowledgement: (
        "acknowledge receipt of the statement and the recommendations of the mission "
        '"{mission_name}"'
    ),
    DeadlineKind.evidence: (
        'send evidence of the implementation of the recommendations of the mission "{mission_name}"'
    ),
}

_SUBJECT_TOPIC = {
    DeadlineKind.nomination: "nomination of observers",
    DeadlineKind.acknowledgement: "acknowledgement of the recommendations",
    DeadlineKind.evidence: "evidence of implementation of the recommendations",
}

_NOT_DONE = {
    DeadlineKind.nomination: "has not nominated observers",
    DeadlineKind.acknowledgement: "has not acknowledged receipt of the recommendations",
    DeadlineKind.evidence: "has not sent evidence of implementation of the recommendations",
}


def _english(kind: DeadlineKind) -> dict[DeliveryPurpose, Template]:
    task = _TASK[kind]
    topic = _SUBJECT_TOPIC[kind]
    footer = _FOOTER["en"]
    answer = "{answer}"
    return {
        DeliveryPurpose.request: Template(
            subject="{mission_name}: " + topic + " requested by {deadline}",
            body=(
                "Dear colleagues,\n\n"
                "{organisation} asks {member_state_name} to " + task + ".\n\n"
                "Please answer by {deadline}.\n\n" + answer + "\n\n" + footer + "\n"
            ),
        ),
        DeliveryPurpose.reminder: Template(
            subject="Reminder {step}: {mission_name}: " + topic + " due {deadline}",
            body=(
                "Dear colleagues,\n\n"
                "This is reminder {step}: {organisation} still awaits the answer of "
                "{member_state_name}, which is asked to " + task + ".\n\n"
                "Deadline: {deadline}. {time_left}\n\n" + answer + "\n\n" + footer + "\n"
            ),
        ),
        DeliveryPurpose.escalation: Template(
            subject="{mission_name}: {member_state_name} "
            + _NOT_DONE[kind]
            + " (deadline {deadline})",
            body=(
                "Dear colleagues,\n\n"
                "{organisation} asked {member_state_name} to " + task + " by {deadline}, "
                "and has had no answer. {escalation_note}\n\n"
                "Please take this up with {member_state_name}, which can still answer.\n\n"
                + answer
                + "\n\n"
                + footer
                + "\n"
            ),
        ),
    }


_RUSSIAN = {
    DeliveryPurpose.request: Template(
        subject="{mission_name}: просьба выдвинуть наблюдателей до {deadline}",
        body=(
            "Уважаемые коллеги!\n\n"
            "{organisation} просит вас выдвинуть наблюдателей для миссии «{mission_name}» "
            "(государство-член: {member_state_name}).\n\n"
            "Просим направить кандидатуры до {deadline}.\n\n"
            + "{answer}"
            + "\n\n"
            + _FOOTER["ru"]
            + "\n"
        ),
    ),
    DeliveryPurpose.reminder: Template(
        subject="Напоминание № {step}: {mission_name}: выдвижение наблюдателей до {deadline}",
        body=(
            "Уважаемые коллеги!\n\n"
            "Напоминание № {step}: {organisation} ожидает выдвижения наблюдателей для миссии "
            "«{mission_name}» (государство-член: {member_state_name}).\n\n"
            "Срок: {deadline}. {time_left}\n\n{answer}\n\n" + _FOOTER["ru"] + "\n"
        ),
    ),
}

_TURKISH = {
    DeliveryPurpose.request: Template(
        subject="{mission_name}: lütfen {deadline} tarihine kadar gözlemci bildiriniz",
        body=(
            "Sayın yetkililer,\n\n"
            '{organisation}, "{mission_name}" misyonu için gözlemci bildirmenizi rica '
            "etmektedir (üye devlet: {member_state_name}).\n\n"
            "Lütfen adaylarınızı en geç {deadline} tarihine kadar iletiniz.\n\n"
            + "{answer}"
            + "\n\n"
            + _FOOTER["tr"]
            + "\n"
        ),
    ),
    DeliveryPurpose.reminder: Template(
        subject="{step}. hatırlatma: {mission_name}: gözlemci bildirimi, son tarih {deadline}",
        body=(
            "Sayın yetkililer,\n\n"
            '{step}. hatırlatma: {organisation}, "{mission_name}" misyonu için gözlemci '
            "bildiriminizi beklemektedir (üye devlet: {member_state_name}).\n\n"
            "Son tarih: {deadline}. {time_left}\n\n{answer}\n\n" + _FOOTER["tr"] + "\n"
        ),
    ),
}

TEMPLATES: dict[tuple[str, DeadlineKind, DeliveryPurpose], Template] = {
    **{
        ("en", kind, purpose): template
        for kind in DeadlineKind
        for purpose, template in _english(kind).items()
    },
    **{("ru", DeadlineKind.nomination, p): t for p, t in _RUSSIAN.items()},
    **{("tr", DeadlineKind.nomination, p): t for p, t in _TURKISH.items()},
}
"""Every (language, kind, purpose) that has its own text; English has all of them."""

_LANGUAGE_TAG = re.compile(r"^\s*([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*\s*$")


def primary_language(language: str | None) -> str:
    """``ru-RU`` and ``RU`` are ``ru``; what is not a language tag is English."""
    match = _LANGUAGE_TAG.match(language or "")
    return match[1].lower() if match else DEFAULT_LANGUAGE


def template_language(
    kind: DeadlineKind | str, purpose: DeliveryPurpose | str, language: str
) -> str:
    """The language a message will actually be written in (the recipient's where a
    translation exists, else English), e.g. for a ``Content-Language`` header."""
    wanted = primary_language(language)
    if (wanted, DeadlineKind(kind), DeliveryPurpose(purpose)) in TEMPLATES:
        return wanted
    return DEFAULT_LANGUAGE


def format_deadline(deadline: datetime) -> str:
    """``2021-01-03 18:00 UTC``: one unambiguous form for every language."""
    if deadline.tzinfo is None or deadline.utcoffset() is None:
        raise ValueError("a deadline needs a time zone (naive datetimes are ambiguous)")
    return deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _russian_plural(n: int, one: str, few: str, many: str) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def _units(language: str, days: int, hours: int, minutes: int) -> list[str]:
    parts: list[tuple[int, str]] = []
    if language == "ru":
        parts = [
            (days, _russian_plural(days, "день", "дня", "дней")),
            (hours, _russian_plural(hours, "час", "часа", "часов")),
            (minutes, _russian_plural(minutes, "минута", "минуты", "минут")),
        ]
    elif language == "tr":
        parts = [(days, "gün"), (hours, "saat"), (minutes, "dakika")]
    else:
        parts = [
            (days, "day" if days == 1 else "days"),
            (hours, "hour" if hours == 1 else "hours"),
            (minutes, "minute" if minutes == 1 else "minutes"),
        ]
    return [f"{n} {unit}" for n, unit in parts if n]


def format_remaining(remaining: timedelta, language: str) -> str:
    """How long is left, to the hour when it is more than a day and to the minute below:
    ``6 days 23 hours``, ``5 hours 30 minutes``; at or after the deadline, a sentence
    saying so."""
    seconds = remaining.total_seconds()
    if seconds < 30:
        return {
            "ru": "Срок наступает сейчас.",
            "tr": "Süre şimdi doluyor.",
        }.get(language, "The deadline is now.")
    if seconds >= 86_400:
        hours_total = round(seconds / 3600)
        days, hours, minutes = hours_total // 24, hours_total % 24, 0
    else:
        minutes_total = max(1, round(seconds / 60))
        days, hours, minutes = 0, minutes_total // 60, minutes_total % 60
    amount = " ".join(_units(language, days, hours, minutes))
    return {"ru": "Осталось: {}.", "tr": "Kalan süre: {}."}.get(language, "Time left: {}.").format(
        amount
    )


def _escalation_note(remaining: timedelta) -> str:
    """Why the escalation contact hears of it: the deadline passed, or (a member state
    that cannot be reached, a coordinator who asked) it is raised before."""
    if remaining.total_seconds() < 30:
        return "The deadline has passed."
    return "The deadline has not passed yet: this is raised with you early."


def render(
    kind: DeadlineKind | str,
    purpose: DeliveryPurpose | str,
    language: str,
    *,
    mission_name: str,
    organisation: str,
    member_state_name: str,
    deadline: datetime,
    answer_hint: str,
    step: int,
    now: datetime | None = None,
    answer_url: str | None = None,
    answer_expires_at: datetime | None = None,
) -> tuple[str, str]:
    """The subject and body of one message.

    ``step`` numbers reminders from 1 (the request and the escalation do not show it).
    ``now`` is when the message is due; give it for a reproducible text (the default, the
    current time, only matters to a reminder's remaining time).

    ``answer_url``, the recipient's answer link, goes on the answer line ("How to answer:
    <url>", in the message's language), with when it stops working (``answer_expires_at``,
    aware, required with it) and ``answer_hint`` as the other way. Without it the answer
    line is the hint alone. Raises ``ValueError`` for an answer link in an escalation (it
    goes to the Secretariat or a permanent representative, not to the focal point whose
    link it would be), for ``answer_url`` without ``answer_expires_at``, and for a naive
    deadline or expiry."""
    kind, purpose = DeadlineKind(kind), DeliveryPurpose(purpose)
    used = template_language(kind, purpose, language)
    template = TEMPLATES[(used, kind, purpose)]
    moment = now if now is not None else datetime.now(UTC)
    hint = answer_hint.strip()
    if answer_url is None:
        answer = _ANSWER[used].format(answer_hint=hint)
    elif purpose is DeliveryPurpose.escalation:
        raise ValueError(
            "answer_url: an escalation goes to the escalation contact, not to the focal "
            "point, and carries no answer link"
        )
    elif answer_expires_at is None:
        raise ValueError("answer_expires_at: an answer link needs the time it stops working")
    else:
        answer = _ANSWER_LINK[used].format(
            answer_url=answer_url.strip(),
            answer_expires=format_deadline(answer_expires_at),
            answer_hint=hint,
        )
    values = {
        "mission_name": mission_name.strip(),
        "organisation": organisation.strip(),
        "member_state_name": member_state_name.strip(),
        "deadline": format_deadline(deadline),
        "answer": answer,
        "step": str(step),
        "time_left": format_remaining(deadline - moment, used),
        "escalation_note": _escalation_note(deadline - moment),
    }
    # Subjects are one line whatever the names contain: a newline there would end the
    # header (or, in a less careful mailer, start a new one).
    subject = " ".join(template.subject.format(**values).split())
    return subject, template.body.format(**values)
