"""Network weights as NumPy arrays and, on the same memory, TensorFlow tensors.

The threads update weights in place as arrays (NumPy, numba) and pass them
to TensorFlow as tensors without a copy: what an update writes is what the
next call reads.
"""

import math

import numpy as np
import tensorflow as tf

TENSORFLOW_ALIGNMENT = 64  # bytes, as TensorFlow's own allocator aligns tensors


class Weights:
    """One network's weights (theta, theta-minus or a thread's theta'), in the network's variable order.

    ``arrays`` are writable NumPy arrays; ``tensors`` are views of the same
    memory. TensorFlow takes tensors to be immutable: write the arrays only
    while no call that was given the tensors is running (each thread's theta'
    is written by that thread only, between its own calls).
    """

    def __init__(self, arrays):
        """Weights on ``arrays``, aligned and C-contiguous (``aligned_zeros``, or a SharedBlock's), not a copy."""
        self.arrays = list(arrays)
        self.tensors = [tensor_view(array) for array in self.arrays]

    @classmethod
    def copy_of(cls, values):
        """Weights in new memory, holding a copy of ``values``."""
        weights = cls([aligned_zeros(np.shape(value)) for value in values])
        weights.assign(values)
        return weights

    def assign(self, values):
        for array, value in zip(self.arrays, values):
            np.copyto(array, value)

    def copy(self):
        """The values now, as new arrays: a consistent snapshot while other threads write."""
        return [array.copy() for array in self.arrays]


def aligned_zeros(shape, dtype=np.float32):
    """Zeros in memory aligned as TensorFlow's kernels expect, for tensor_view."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buffer = np.zeros(nbytes + TENSORFLOW_ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % TENSORFLOW_ALIGNMENT
    return buffer[start : start + nbytes].view(dtype).reshape(shape)


def tensor_view(array):
    """A tensor on the memory of an aligned array: DLPack lends it to TensorFlow without a copy."""
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


def flat_views(arrays):
    """1-D views of C-contiguous arrays; anything else would be a copy, and writes to it lost."""
    views = []
    for array in arrays:
        if not array.flags.c_contiguous:
            raise ValueError(f"expected a C-contiguous array, got strides {array.strides}")
        views.append(array.reshape(-1))
    return tuple(views)


def all_finite(arrays):
    return all(np.isfinite(array).all() for array in arrays)
