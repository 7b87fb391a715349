"""Errors a user can act on. Each names the file, row, field or key that is wrong."""


class SSPError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class RecipeError(SSPError):
    """A recipe (YAML file or command-line override) is invalid."""


class FieldError(RecipeError):
    """Raised from a config dataclass's ``__post_init__``.

    The dataclass does not know where it sits in the recipe tree; ``config.recipe``
    catches this and rewrites it with the full key path (``sft.learning_rate: ...``).
    """

    def __init__(self, owner: object, field: str, message: str):
        self.owner, self.field, self.message = owner, field, message
        super().__init__(f"{field}: {message}")


class DataError(SSPError):
    """A data file is missing, unreadable, or has a bad row."""


class StageError(SSPError):
    """A stage cannot run (missing upstream stage, failed subprocess, ...)."""


def check(owner: object, field: str, ok: bool, message: str) -> None:
    """``assert`` for config fields: raise a FieldError naming ``field`` unless ``ok``."""
    if not ok:
        raise FieldError(owner, field, message)


def check_positive(owner: object, *fields: str, zero_ok: bool = False) -> None:
    """``check`` for numeric fields that must be > 0 (``zero_ok``: >= 0), naming the value found."""
    for field in fields:
        value = getattr(owner, field)
        ok = value >= 0 if zero_ok else value > 0
        check(owner, field, ok, f"must be {'>=' if zero_ok else '>'} 0, got {value}")


def check_count_or_auto(owner: object, field: str) -> None:
    """``check`` for a count that may also be ``'auto'`` (processes, engines)."""
    n = getattr(owner, field)
    check(
        owner,
        field,
        n == "auto" or (isinstance(n, int) and n >= 1),
        f"must be a positive integer or 'auto', got {n!r}",
    )
