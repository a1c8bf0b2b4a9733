"""The paper's shared RMSProp: one set of statistics for all threads, updated without locks."""

import numba
import numpy as np

from async_runtime.weights import flat_views

SMALLEST_NORMAL = np.float32(np.finfo(np.float32).tiny)  # below it, float32 is subnormal


class SharedRMSProp:
    """RMSProp whose statistics all threads share:

        g     <- decay * g + (1 - decay) * grad ** 2
        theta <- theta - learning_rate * grad / sqrt(g + epsilon)

    theta and g are NumPy arrays that the threads update at the same time,
    in place and without locks, as the paper's actor-learners do. The step
    is a compiled loop that releases the GIL; TensorFlow's own update
    kernels lock each variable for the whole update, which kept two threads'
    updates from overlapping (docs/performance.md).
    """

    def __init__(self, theta, mean_squares, decay, epsilon):
        """``theta``, ``mean_squares`` (g): the arrays the updates write, in place."""
        self.decay = decay
        self.epsilon = epsilon
        self.mean_squares = mean_squares
        self._flat_theta = flat_views(theta)
        self._flat_mean_squares = flat_views(mean_squares)

    def apply(self, gradients, clip_factor, learning_rate, theta_copy):
        """theta <- RMSProp(theta, clip_factor * gradients); theta_copy <- the new theta, in the same pass."""
        _rmsprop_step(
            self._flat_theta,
            self._flat_mean_squares,
            flat_views(np.asarray(gradient) for gradient in gradients),
            flat_views(theta_copy),
            clip_factor,
            learning_rate,
            self.decay,
            self.epsilon,
        )

    def compile(self, gradients):
        """Compile the step for ``gradients``' types now, before clocks run: on scratch arrays, so
        theta and g stay as they are (other processes may be training on them)."""
        scratch = [np.zeros_like(array) for array in self._flat_theta]
        _rmsprop_step(
            tuple(scratch),
            tuple(np.zeros_like(array) for array in scratch),
            flat_views(np.asarray(gradient) for gradient in gradients),
            tuple(np.zeros_like(array) for array in scratch),
            1.0,
            0.0,
            self.decay,
            self.epsilon,
        )


# One call for all layers: each call out of Python lets the other threads take
# the GIL, and winning it back can mean waiting for one of them.
@numba.njit(nogil=True, error_model="numpy")
def _rmsprop_step(thetas, mean_squares, gradients, theta_copies, clip_factor, learning_rate, decay, epsilon):
    """SharedRMSProp's step on tuples of flat float32 arrays: one pass over memory, the clip applied on the way."""
    # float32 throughout, as TensorFlow's kernel computes: the loops vectorise.
    clip_factor, learning_rate = np.float32(clip_factor), np.float32(learning_rate)
    decay, epsilon = np.float32(decay), np.float32(epsilon)
    new_weight = np.float32(1.0) - decay
    # A weight whose gradient stays 0 (a dead ReLU's) has its g decay by
    # `decay` each update, into subnormal floats within some 9,000 updates;
    # arithmetic on them is some 100 times slower. On Breakout with learning
    # rate 1e-3, 45% of the dense layer's g went subnormal and a 4-thread
    # run slowed from ~5,200 to ~3,900 frames/s within its first minute.
    # Flushed to 0 instead: sqrt(g + epsilon) differs by under 1e-36.
    for layer in range(len(thetas)):
        theta, mean_square = thetas[layer], mean_squares[layer]
        gradient, theta_copy = gradients[layer], theta_copies[layer]
        for i in range(theta.size):
            grad = gradient[i] * clip_factor
            g = decay * mean_square[i] + new_weight * grad * grad
            if g < SMALLEST_NORMAL:
                g = np.float32(0.0)
            mean_square[i] = g
            value = theta[i] - learning_rate * grad / np.sqrt(g + epsilon)
            theta[i] = value
            theta_copy[i] = value
