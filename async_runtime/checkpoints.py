"""Checkpoints: save, resume, refuse bad files; each also exported as a .keras model.

A checkpoint holds the global network, the target network (for the learners
that keep one), the RMSProp statistics, T and the network's version as
TensorFlow variables (the global network's are what ``--testing`` loads); the
arrays the threads update are copied in to save and out after a restore.
TensorFlow writes a checkpoint's files first and only then points the
``checkpoint`` index at them, atomically: a run killed mid-write leaves the
previous checkpoint as the latest.

Beside each checkpoint ``ckpt-T``, ``ckpt-T.keras`` holds the global network
alone, for ``keras.models.load_model`` anywhere (README, "Using a trained
network").
"""

import glob
import os
import sys

import numpy as np
import tensorflow as tf

from async_runtime.errors import CheckpointMismatch, UsageError
from async_runtime.weights import all_finite
from build_model import HIDDEN_UNITS, NETWORK_VERSION

CHECKPOINTS_KEPT = 5
KERAS_SUFFIX = ".keras"
VERSION_KEY = "network_version/.ATTRIBUTES/VARIABLE_VALUE"
UNRECORDED_VERSION = 1  # what a checkpoint made before versions were recorded holds


class Checkpoints:
    """A run's checkpoints under <checkpoint_dir>/<experiment>, with the newest CHECKPOINTS_KEPT kept."""

    def __init__(self, shared, directory):
        self.shared = shared
        history = shared.args.agent_history_length
        # Portable: these networks only hold weights, and the global one is saved as .keras.
        self.global_network = shared.model.build_network(shared.num_actions, history, portable=True)
        self.rmsprop = tf.Module()
        self.rmsprop.mean_squares = [tf.Variable(value, trainable=False) for value in shared.optimizer.mean_squares]
        self.T = tf.Variable(0, dtype=tf.int64, trainable=False)
        network_version = tf.Variable(NETWORK_VERSION, dtype=tf.int64, trainable=False)
        parts = dict(
            global_network=self.global_network, optimizer=self.rmsprop, T=self.T, network_version=network_version
        )
        self.target_network = None
        if shared.target is not None:
            self.target_network = parts["target_network"] = shared.model.build_network(
                shared.num_actions, history, portable=True
            )
        self.checkpoint = tf.train.Checkpoint(**parts)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=CHECKPOINTS_KEPT)

    def restore_latest(self):
        """Restore the newest checkpoint that loads; return its path, or None if there is none.

        Call it before any actor-learner starts: it writes the shared state in place.
        """
        for path in reversed(self.manager.checkpoints):
            try:
                restore(self.checkpoint, path, self.global_network)
            except CheckpointMismatch:
                raise
            except UsageError as error:  # unreadable, e.g. cut short by a crash: try the one before
                print(f"warning: skipping {path}: {error}", file=sys.stderr)
                continue
            shared = self.shared
            shared.theta.assign([variable.numpy() for variable in self.global_network.trainable_variables])
            for array, variable in zip(shared.optimizer.mean_squares, self.rmsprop.mean_squares):
                np.copyto(array, variable.numpy())
            if self.target_network is not None:
                shared.target.assign([variable.numpy() for variable in self.target_network.trainable_variables])
            shared.T.reset(int(self.T.numpy()))
            return path
        if self.manager.checkpoints:
            raise UsageError(f"no checkpoint in {self.manager.directory} loads")
        return None

    def save(self):
        """Save if every weight is finite; return the path, or None if not saved.

        The threads may be updating theta meanwhile: what is checked is
        what is saved, a copy taken first.
        """
        shared = self.shared
        theta = shared.theta.copy()
        if not all_finite(theta):
            return None
        parts = [
            (self.global_network.trainable_variables, theta),
            (self.rmsprop.mean_squares, shared.optimizer.mean_squares),
        ]
        if self.target_network is not None:
            parts.append((self.target_network.trainable_variables, shared.target.arrays))
        for variables, values in parts:
            for variable, value in zip(variables, values):
                variable.assign(value)
        T = shared.T.value
        self.T.assign(T)
        path = self.manager.save(checkpoint_number=T)
        self._export_keras(path)
        return path

    def _export_keras(self, path):
        """Write the global network as ``<path>.keras``; drop those of checkpoints the manager deleted."""
        partial = f"{path}.partial{KERAS_SUFFIX}"  # Keras wants the suffix; the rename makes it appear whole
        self.global_network.save(partial)
        os.replace(partial, path + KERAS_SUFFIX)
        kept = {checkpoint + KERAS_SUFFIX for checkpoint in self.manager.checkpoints}
        for exported in glob.glob(os.path.join(self.manager.directory, f"ckpt-*{KERAS_SUFFIX}")):
            if exported not in kept:
                os.remove(exported)


def restore(checkpoint, path, global_network):
    """Restore ``path`` into ``checkpoint``, refusing files that are missing, corrupt, or made for
    another game, by another kind of learner or for another version of the network than ``global_network``'s."""
    try:
        saved_shapes = dict(tf.train.list_variables(path))
        version = UNRECORDED_VERSION
        if VERSION_KEY in saved_shapes:
            version = int(tf.train.load_variable(path, VERSION_KEY))
    except (tf.errors.OpError, ValueError) as error:
        raise UsageError(f"cannot read checkpoint {path}: {error.__class__.__name__}") from None
    if version != NETWORK_VERSION:
        # Same shapes, other arithmetic: it would load, then act on what its weights never learned.
        raise CheckpointMismatch(
            f"checkpoint {path} was made for network version {version}, this code's is {NETWORK_VERSION} "
            "(build_model.NETWORK_VERSION says what changed): train afresh, or use the code that made it"
        )
    saved = sorted(
        tuple(shape) for name, shape in saved_shapes.items() if name.startswith("global_network/") and shape
    )
    expected = sorted(tuple(variable.shape) for variable in global_network.trainable_variables)
    if saved == expected:
        return _restore_checked(checkpoint, path)
    # The heads' kernels are the (hidden units, k) matrices: k is the number of
    # actions for a policy or Q head, 1 for a value head.
    saved_heads = [shape[1] for shape in saved if len(shape) == 2 and shape[0] == HIDDEN_UNITS]
    expected_heads = [shape[1] for shape in expected if len(shape) == 2 and shape[0] == HIDDEN_UNITS]
    if len(saved_heads) != len(expected_heads):
        raise CheckpointMismatch(
            f"checkpoint {path} was made by another kind of learner: its network has "
            f"{len(saved_heads)} output heads, this learner's has {len(expected_heads)}"
        )
    if max(saved_heads) != max(expected_heads):
        raise CheckpointMismatch(
            f"checkpoint {path} was made for a game with {max(saved_heads)} actions; "
            f"this game has {max(expected_heads)}"
        )
    return _restore_checked(checkpoint, path)  # any other difference fails to load, as a bad file does


def _restore_checked(checkpoint, path):
    try:
        status = checkpoint.restore(path).expect_partial()
    except (tf.errors.OpError, ValueError, AssertionError) as error:
        raise UsageError(f"cannot load checkpoint {path}: {error.__class__.__name__}") from None
    try:
        # TensorFlow finds variables by their place in the Keras graph and
        # only warns about those it cannot find, leaving them as initialised.
        status.assert_existing_objects_matched()
    except AssertionError:
        raise CheckpointMismatch(
            f"checkpoint {path} names its weights by another layout of the network than this code's: "
            "train afresh, or use the code that made it"
        ) from None
