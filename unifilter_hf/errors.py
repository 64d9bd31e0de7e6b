"""The base of every error unifilter-hf raises on purpose, so a caller can catch them all in one place.

Each subclass also derives from the builtin that callers caught before (``ValueError``, ``RuntimeError``,
``OSError``), so ``except ValueError`` keeps working. None of them exits the interpreter: the
``unifilter-hf`` command maps them to exit status 2 and a one-line message (``unifilter_hf.cli.main``).
This module imports nothing, so a saved checkpoint carries it as remote code with ``sample.py``.

Example:
    >>> from unifilter_hf.sample import SampleError
    >>> issubclass(SampleError, UniFilterError) and issubclass(SampleError, ValueError)
    True
"""


class UniFilterError(Exception):
    """A problem unifilter-hf detected and described in one line (bad input, missing model, refused push...)."""


__all__ = ["UniFilterError"]
