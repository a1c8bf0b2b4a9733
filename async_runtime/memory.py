"""The memory the actor-learners share, and the few synchronisation objects that go with it.

Threads of one process and processes of one machine run the same code on
the same objects: named arrays carved from one block of memory (theta, the
RMSProp statistics, theta-minus, T, the loss sums), one lock for the rare
writes that must not interleave, an event that stops the run, and queues
to the driver. For threads the block is ordinary memory and the rest comes
from ``threading`` and ``queue``. For processes the block is shared memory
mapped before they start, on a file unlinked as soon as it is made, so
nothing is left in /dev/shm however the run ends; the rest is
``multiprocessing``'s, with the spawn start method (TensorFlow's threads do
not survive a fork).
"""

import ctypes
import math
import multiprocessing
import queue
import threading

import numpy as np

# Each array starts where TensorFlow's kernels expect a tensor to (weights.tensor_view).
from async_runtime.weights import TENSORFLOW_ALIGNMENT as ALIGNMENT


class SharedBlock:
    """Named arrays in one block of memory; for processes, picklable into the processes it starts.

    ``layout``: (name, shape, dtype) per array, all zero at first.
    """

    def __init__(self, layout, processes):
        self._layout = [(name, tuple(shape), np.dtype(dtype).str) for name, shape, dtype in layout]
        size = sum(_padded(math.prod(shape) * np.dtype(dtype).itemsize) for _, shape, dtype in self._layout)
        if processes:
            context = multiprocessing.get_context("spawn")
            self._buffer = context.RawArray(ctypes.c_uint8, size + ALIGNMENT)
            self.lock, self.stop_event = context.Lock(), context.Event()
            self.episodes, self.failures = context.Queue(), context.Queue()
        else:
            self._buffer = np.zeros(size + ALIGNMENT, np.uint8)
            self.lock, self.stop_event = threading.Lock(), threading.Event()
            self.episodes, self.failures = queue.SimpleQueue(), queue.SimpleQueue()
        self._start = -np.frombuffer(self._buffer, np.uint8).ctypes.data % ALIGNMENT
        self.arrays = self._carve()

    def group(self, prefix):
        """The arrays named ``prefix/0``, ``prefix/1``, ... in order."""
        return [array for name, array in self.arrays.items() if name.rsplit("/", 1)[0] == prefix]

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["arrays"]  # views: rebuilt on the memory as the receiving process maps it
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.arrays = self._carve()

    def _carve(self):
        memory = np.frombuffer(self._buffer, np.uint8)
        # The block's mappings are page-aligned in every process, so the same offset aligns in all.
        assert (memory.ctypes.data + self._start) % ALIGNMENT == 0
        arrays, offset = {}, self._start
        for name, shape, dtype in self._layout:
            nbytes = math.prod(shape) * np.dtype(dtype).itemsize
            arrays[name] = memory[offset : offset + nbytes].view(dtype).reshape(shape)
            offset += _padded(nbytes)
        return arrays


def _padded(nbytes):
    return -(-nbytes // ALIGNMENT) * ALIGNMENT


def drain(queue_):
    """What ``queue_`` (a block's episodes or failures) holds now, without waiting."""
    items = []
    while True:
        try:
            items.append(queue_.get_nowait())
        except queue.Empty:
            return items
