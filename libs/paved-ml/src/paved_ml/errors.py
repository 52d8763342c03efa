"""One exception tree for the library: callers catch PavedMLError."""


class PavedMLError(Exception):
    """Base of every error paved_ml raises on purpose."""


class ConfigError(PavedMLError):
    """The project's [tool.paved] settings are missing or wrong."""


class SchemaError(PavedMLError):
    """A table does not match its declared schema."""


class RegistryError(PavedMLError):
    """The model registry is not in the state an operation needs."""
