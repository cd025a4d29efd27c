"""Engines: the only code that knows time.  ``sim`` is virtual time."""
