"""Reader registry: kind -> function(path) -> (x_train, y_train, x_test, y_test) as uint8/int64."""
from train.data import imagefolder, official, pybatches

READERS = {
    "imagefolder": imagefolder.read,
    "pybatches": pybatches.read,
    "official": official.read,
}
