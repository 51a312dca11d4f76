"""Outgoing e-mail through the configured SMTP relay (QUAYSIDE_SMTP_HOST/PORT/FROM)."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from shared.config import Settings

SEND_TIMEOUT_S = 5.0


class MailError(Exception):
    """The relay could not be reached or refused the message."""


async def send_email(
    settings: Settings,
    to: str,
    subject: str,
    body: str,
    *,
    attachment: tuple[str, bytes] | None = None,
) -> None:
    """Send a plain-text message, with an optional (filename, JSON bytes) attachment; MailError on failure."""
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if attachment is not None:
        filename, content = attachment
        message.add_attachment(content, maintype="application", subtype="json", filename=filename)
    try:
        await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port, timeout=SEND_TIMEOUT_S
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise MailError(f"sending mail to {to} failed: {error!r}") from error
