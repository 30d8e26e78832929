"""Errors a user can act on.

Anything raised as a `MimicalError` reaches the user as one clear line (CLI: exit
status 2; HTTP: a 4xx JSON body) instead of a traceback. Code raises the most
specific subclass so callers can map it to the right status without parsing text.
"""


class MimicalError(Exception):
    """A problem with the user's input or environment, explained in `str(self)`."""

    http_status = 400
    code = "bad_request"


class InputError(MimicalError):
    """An input file or argument is unusable: missing, corrupt, unsafe or empty."""

    http_status = 422
    code = "invalid_input"


class UnsupportedFormatError(InputError):
    """The input is not a chat export mimical can read."""

    http_status = 415
    code = "unsupported_format"


class TooLargeError(InputError):
    """The input exceeds a configured size limit (or looks like a zip bomb)."""

    http_status = 413
    code = "too_large"


class NotFoundError(MimicalError):
    """A named persona, model or object does not exist."""

    http_status = 404
    code = "not_found"


class ConflictError(MimicalError):
    """The request collides with existing state (e.g. a name already taken)."""

    http_status = 409
    code = "conflict"


class AuthError(MimicalError):
    """A password or owner token is missing or wrong."""

    http_status = 401
    code = "unauthorized"


class RateLimitedError(MimicalError):
    """Too many attempts (passwords, builds, chat messages) from one client; wait and retry."""

    http_status = 429
    code = "too_many_requests"


class UnavailableError(MimicalError):
    """A backing service (model server, storage, Redis) cannot be reached right now."""

    http_status = 503
    code = "unavailable"
