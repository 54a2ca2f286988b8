"""Checkpoint validation, guarded restore and crash-safe saving.

A checkpoint saved before the model or optimizer changed (a layer added, a dtype switched, a layer
renamed, a file damaged) usually fails deep inside a restore or `apply_gradients` with an opaque
error, or restores partially and silently. This package looks first and says what differs:

- `validate(path, **objects)` matches the checkpoint to the objects exactly as
  `tf.train.Checkpoint` does (through the object graph, not by names) and returns a `Report`.
- `restore(path, **objects)` validates, builds what must be built (Keras optimizers create their
  slots lazily), restores, checks that every saved value arrived, and never half-restores.
- `save(prefix, **objects)` writes a checkpoint plus the optimizer configuration beside it.
- `Manager` keeps the last N checkpoints, refuses to save NaN, verifies every save before it
  deletes older ones, and restores the newest checkpoint that reads whole.
- `watch_restores(report)` validates the restores a script makes itself (`gradguard run`).

Inside: `files` reads checkpoints, `graph` matches saved values to live objects, `compare`
puts them side by side (`values` is what it compares), `config` records and compares the
optimizer's configuration, `messages` says what differs, `restore` holds the public functions,
`durable` writes a checkpoint that counts only once whole and on disk, `directory` knows what a
Manager's directory holds, `lock` keeps one writer per directory, `manager` is the `Manager`,
`watch` the restore watcher, and `summary` what `gradguard ckpt` shows.

Example:
  >>> manager = Manager("/tmp/run", max_to_keep=3, model=model, optimizer=optimizer)
  >>> path, report = manager.restore()  # None on a fresh start
  >>> ...  # train
  >>> manager.save()
"""

from gradguard.checkpoint.files import VariableInfo, list_variables
from gradguard.checkpoint.manager import Manager
from gradguard.checkpoint.messages import CheckpointMismatchError
from gradguard.checkpoint.restore import restore, save, validate
from gradguard.checkpoint.watch import watch_restores

__all__ = [
    "CheckpointMismatchError",
    "Manager",
    "VariableInfo",
    "list_variables",
    "restore",
    "save",
    "validate",
    "watch_restores",
]
