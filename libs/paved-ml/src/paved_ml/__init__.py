"""paved_ml: the library every Paved team repo shares, pinned to its platform release."""

from importlib.metadata import version

from paved_ml.errors import ConfigError, PavedMLError, SchemaError

__version__ = version("paved-ml")
__all__ = ["ConfigError", "PavedMLError", "SchemaError", "__version__"]
