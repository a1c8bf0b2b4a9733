"""The TensorFlow work of the hot loop: two functions, traced once, shared by all threads.

Each thread calls them on the same tensors every time (its theta' and its
batch buffers, filled in place), so a call can skip a ``tf.function``'s
binding and checking of its arguments: about 0.3 ms of the GIL per update.
That shortcut, ``ConcreteFunction.inference_fn.call_flat``, is not public
TensorFlow API. It is used only after a check at start-up finds it and
finds that it gives what the public call gives; otherwise the public call
is used and one warning line says so. Measured on TensorFlow 2.21.
"""

import sys

import numpy as np
import tensorflow as tf

from async_runtime.models import q_learning_loss

FAST_CALL_TOLERANCE = 1e-6  # relative and absolute; the same graph runs either way, so 0 is expected


class CompiledOps:
    """``q_values`` and ``gradient`` of ``loss``, on weights passed in rather than closed over.

    The network's ``stateless_call`` runs it on any thread's theta' or on
    theta-minus, so each function is traced once for all threads. Batches
    have fixed sizes (shorter segments are padded with rows that select no
    action), so nothing is traced again.
    """

    def __init__(self, network, clip_norm, loss=q_learning_loss, fast_calls=True):
        @tf.function(jit_compile=True)
        def q_values(weights, states):
            """Q(s, a; weights): one row per state, one column per action."""
            return network.stateless_call(weights, [], states)[0]

        # Not XLA-compiled: XLA's CPU convolution gradients took 3.1 ms here
        # against 1.8 ms for TensorFlow's own kernels (5 states).
        @tf.function
        def gradient(weights, states, action_masks, targets):
            """The gradient of ``loss`` at ``weights``, and the factor that clips it.

            ``action_masks`` is one-hot: row i selects a_i, and the all-zero
            rows of padding select nothing. Returns the loss, the gradients,
            and min(1, clip_norm / their global norm): the update scales by
            it as it passes over them anyway.
            """
            with tf.GradientTape() as tape:
                tape.watch(weights)
                outputs = network.stateless_call(weights, [], states)[0]
                summed_loss = loss(outputs, action_masks, targets)
            gradients = tape.gradient(summed_loss, weights)
            return summed_loss, gradients, tf.minimum(1.0, clip_norm / tf.linalg.global_norm(gradients))

        self.q_values = q_values
        self.gradient = gradient
        self.fast_calls = fast_calls
        self._checked = {}  # function name -> whether its fast call passed the check

    def bind(self, function, *args):
        """A call of ``function`` on flat tensors shaped as ``args``: ``call(*flat) -> list of tensors``.

        ``args`` are the structured arguments (lists of tensors allowed); the
        returned callable takes their flattened tensors, in order, and
        returns the flattened outputs.
        """
        concrete = function.get_concrete_function(*args)

        def public_call(*flat):
            return tf.nest.flatten(concrete(*tf.nest.pack_sequence_as(args, list(flat))))

        name = function.__name__
        if name not in self._checked:
            self._checked[name] = self.fast_calls and _fast_call_agrees(name, concrete, public_call, args)
        return _fast_call(concrete) if self._checked[name] else public_call


def _fast_call(concrete):
    return concrete.inference_fn.call_flat


def _fast_call_agrees(name, concrete, public_call, args):
    """Run one call both ways on random inputs; warn and return False unless they agree."""
    reason = None
    try:
        fast_call = _fast_call(concrete)
    except AttributeError:
        reason = "has no ConcreteFunction.inference_fn.call_flat"
    else:
        rng = np.random.default_rng(0)
        inputs = [_random_like(tensor, rng) for tensor in tf.nest.flatten(args)]
        fast = [np.asarray(value) for value in fast_call(*inputs)]
        public = [np.asarray(value) for value in public_call(*inputs)]
        agree = len(fast) == len(public) and all(
            a.shape == b.shape and np.allclose(a, b, rtol=FAST_CALL_TOLERANCE, atol=FAST_CALL_TOLERANCE)
            for a, b in zip(fast, public)
        )
        if not agree:
            reason = "gives other results through ConcreteFunction.inference_fn.call_flat"
    if reason is None:
        return True
    print(
        f"warning: TensorFlow {tf.__version__} {reason} ({name}); "
        "using the public tf.function call, about 0.3 ms slower per update",
        file=sys.stderr,
    )
    return False


def _random_like(tensor, rng):
    """A tensor of random values with ``tensor``'s shape and dtype: a check that zeros would pass proves little."""
    shape = tuple(tensor.shape)
    if tensor.dtype == tf.uint8:
        return tf.constant(rng.integers(0, 256, shape, dtype=np.uint8))
    return tf.constant(rng.standard_normal(shape).astype(tensor.dtype.as_numpy_dtype))
