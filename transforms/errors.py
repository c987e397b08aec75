"""The exceptions of the pure layer: a value a normaliser cannot use, a payload a reader cannot
read."""


class InvalidValue(ValueError):
    """A non-empty value that cannot be used; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ReadError(ValueError):
    """The payload cannot be read as the declared format; the message says why."""
