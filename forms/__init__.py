"""Observation forms: XLSForms converted by pyxform, the form library, OpenRosa, and the
XPath adapter that evaluates forms' expressions."""
