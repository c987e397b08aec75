"""The one exception normalisers raise for a value they cannot use."""


class InvalidValue(ValueError):
    """A non-empty value that cannot be used; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
