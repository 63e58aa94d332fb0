"""Reader registry: kind -> function(path, size) -> ((x_train, y_train, x_test, y_test), info).

Arrays are uint8 NHWC and int64 labels; info holds the class names and how test was chosen.
`size` (H, W) only matters to image folders whose images differ in size (runtime/imagefolder.py).
"""
from runtime import imagefolder
from train.data import official, pybatches


def _cifar(read):
    """The CIFAR-10 archives: ten fixed classes, the official test split."""
    def reader(path, size=None):
        from train.data import CLASSES
        return read(path), {"classes": list(CLASSES), "split": {"layout": "split"}, "resized": None}
    return reader


READERS = {
    "imagefolder": imagefolder.read,
    "pybatches": _cifar(pybatches.read),
    "official": _cifar(official.read),
}
