"""Training and evaluation of one model (realsmilenet.md §4-§7).

- ``options``: the training options a run needs (their values: configs/__init__.py) and the epoch count;
- ``examples``: a split's examples, standardisation, training and evaluation batches;
- ``steps``: the objective, the jitted (and data-parallel) training step, the evaluation step;
- ``checkpoints``: orbax checkpoints and the epoch selection rule;
- ``evaluate``: evaluation-mode outputs, accuracy and loss;
- ``run``: ``fit`` (one model on one fold: train, select, test once), its files, and ``load_trained``.
"""

from smilejax.train.checkpoints import select_epoch, selection_key
from smilejax.train.evaluate import accuracy_and_loss, predict, predict_batch, sigmoid
from smilejax.train.examples import Examples, Standardizer, as_examples, epoch_order, take_batch
from smilejax.train.options import RESULT_NEUTRAL_TRAIN_KEYS, SELECTIONS, TRAIN_KEYS, resolve_epochs, train_options
from smilejax.train.run import FitResult, TrainedModel, fit, load_trained
from smilejax.train.steps import Steps, TrainState, data_parallel_devices, get_steps, init_state

__all__ = [
  "RESULT_NEUTRAL_TRAIN_KEYS",
  "SELECTIONS",
  "TRAIN_KEYS",
  "Examples",
  "FitResult",
  "Standardizer",
  "Steps",
  "TrainState",
  "TrainedModel",
  "accuracy_and_loss",
  "as_examples",
  "data_parallel_devices",
  "epoch_order",
  "fit",
  "get_steps",
  "init_state",
  "load_trained",
  "predict",
  "predict_batch",
  "resolve_epochs",
  "select_epoch",
  "selection_key",
  "sigmoid",
  "take_batch",
  "train_options",
]
