"""paved: the platform CLI that generates and maintains ML team repos."""

from importlib.metadata import version

from paved._errors import PavedError
from paved.template import PLATFORM_URL, new_project

__version__ = version("paved")
__all__ = ["PLATFORM_URL", "PavedError", "__version__", "new_project"]
