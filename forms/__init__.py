"""Observation forms: XLSForms converted by pyxform, the form library, OpenRosa, and the
XPath adapter that evaluates forms' expressions."""


class FieldError(ValueError):
    """Input a forms operation cannot take: ``field`` names the field, element or setting
    at fault, ``message`` why, for a person."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
