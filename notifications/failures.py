"""Which send errors are worth retrying: an outage is, a rejection of the recipient is not.

Three outcomes, decided here from the exception the mail backend raised (Django's SMTP backend or an
anymail ESP backend):
- transient (the server or ESP is down, slow, rate limiting, or says "try later"): raise EmailUnavailable,
  which the handler's RetryPolicy retries with backoff held by the broker, then dead-letters;
- permanent (this recipient or this message is refused for good): the e-mail's row becomes `failed`
  and nothing retries;
- anything else (a bug, our credentials refused): re-raised as it is, so the message is dead-lettered
  at once and can be replayed once it is fixed.
"""

from __future__ import annotations

import smtplib
import socket

from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused

from notifications.emails import InvalidRecipient


class EmailUnavailable(Exception):
    """The mail server or ESP could not take the message now; retried with backoff."""


# HTTP statuses of an ESP's API that mean "later", not "no".
_RETRYABLE_HTTP = {408, 425, 429}
# HTTP statuses that reject our account (credentials, permissions), not the message: dead-lettered for a replay.
_ACCOUNT_HTTP = {401, 403}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # Every recipient refused: transient only if the server said "try later" (4xx, e.g. greylisting).
        return bool(exc.recipients) and all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True
    if isinstance(exc, AnymailRecipientsRefused | AnymailInvalidAddress):
        return False
    if isinstance(exc, AnymailAPIError):
        status = exc.status_code
        return status is None or status >= 500 or status in _RETRYABLE_HTTP
    # Connection refused or reset, a timeout, DNS failure: the server is not there right now.
    return isinstance(exc, OSError | socket.timeout | TimeoutError)


def is_permanent(exc: BaseException) -> bool:
    """The recipient or the message is refused for good: retrying would get the same answer."""
    if isinstance(exc, InvalidRecipient | AnymailRecipientsRefused | AnymailInvalidAddress):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return not is_transient(exc)
    if isinstance(exc, smtplib.SMTPDataError):
        return exc.smtp_code >= 500  # the message itself refused (size, content policy)
    if isinstance(exc, AnymailAPIError):
        status = exc.status_code
        return status is not None and 400 <= status < 500 and status not in _RETRYABLE_HTTP | _ACCOUNT_HTTP
    return False
