"""Bad or missing data; the CLI prints it as one line and exits non-zero. The one class lives in
runtime.errors, because the image-folder reader (runtime/imagefolder.py) serves devices too."""
from runtime.errors import DataError

__all__ = ["DataError"]
