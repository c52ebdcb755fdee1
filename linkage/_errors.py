"""Domain errors. The server maps each class to one gRPC status code, in one place."""

from __future__ import annotations


class LinkageError(Exception):
    """Base class of every error the core raises on purpose."""


class InvalidArgument(LinkageError):
    """Bad input; `field` is the path of the offending field, e.g. `signals[2].identifiers[0].value`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(LinkageError):
    """The thing asked for does not exist."""


class Unavailable(LinkageError):
    """The core cannot take the request now (shutting down, store failed); retrying may help."""


class Busy(LinkageError):
    """Another operation of the kind is under way (a model change): try again after it."""


class FellBehind(LinkageError):
    """A follower of the change feed fell too far behind it; it resumes from its cursor."""

    def __init__(self, cursor: int, behind: int) -> None:
        super().__init__(f"fell {behind} changes behind the change feed; resume with after_sequence={cursor}")


class ModelError(LinkageError):
    """A model file a scorer cannot compile: SQL outside its catalogue, a column its records
    lack, numbers Splink would refuse. The message names the comparison and level."""
