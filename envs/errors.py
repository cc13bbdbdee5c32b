"""The error type for a user's mistake, shared by every layer.

Library code raises `UsageError` when the cause is something the user gave (a bad
value, a missing file or directory, a goal range beyond the split, a server that
cannot be reached) and the message says what is wrong and what to do. The
`webgrove` command prints such an error as one line on stderr and exits 2; any
other exception is a bug and keeps its traceback. It subclasses ValueError, so
callers that catch ValueError for bad arguments keep working.

It lives in `webgrove.envs`, the lowest layer, so that envs, agents, search and
training can all raise it without an import running backwards.
"""
from __future__ import annotations


class UsageError(ValueError):
    """A user error: the message names the bad input and says what to do instead."""
