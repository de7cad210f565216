"""What an attendee is told when a registration is refused: the service's words, unless they say too much."""

from __future__ import annotations

from registrations.services import RegistrationRefused

# Anyone may type any address into the form or the API, so the answer for an address that already holds a
# registration repeats neither the address nor anything of that registration (its id, name or status); the
# stable code `already_registered` is all a program learns, and the rate limit on registrations bounds how
# many addresses anyone can try. The attendee who really registered is told where to look.
ALREADY_REGISTERED_MESSAGE = (
    "This e-mail address cannot be registered again for this event. If you registered earlier, check your "
    "inbox (and spam folder) for the confirmation, or contact the organiser. To register someone else, use "
    "their own e-mail address."
)


def refusal_message(refusal: RegistrationRefused) -> str:
    if refusal.code == "already_registered":
        return ALREADY_REGISTERED_MESSAGE
    return refusal.message
