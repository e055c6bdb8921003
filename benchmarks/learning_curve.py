#!/usr/bin/env python3
"""RealSmileNet learning curves on the synthetic corpus: training loss and accuracy per epoch, on a few folds.

    python benchmarks/learning_curve.py [--config=configs/default.py] [--folds=1,2,3] [--epochs=20]
        [--recipes=paper,default] [--out=benchmarks/results/learning_curve.jsonl] [--plot=docs/learning_curve.png]

Each recipe trains RealSmileNet on each fold's training subjects minus the inner validation split, exactly as
``bin/run_fold`` does (same split, seed, batches and training step), and after every epoch evaluates (evaluation mode)
the training split, the validation split and the test fold. The test accuracy is a diagnostic of this figure only:
the runs select their epoch on the validation split (realsmilenet.md §6). Recipes:

- ``paper``: the config with the paper's recipe (realsmilenet.md §5: the official ConvLSTM init, ``forget_bias`` 0);
- ``default``: the config as it is (configs/default.py: ``forget_bias`` 2).

Rows are appended to --out as JSON lines; a (recipe, fold) pair already complete there is not run again, so an
interrupted run resumes. The figure plots the means over the folds. Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from smilejax import experiment, prepare, runtime  # noqa: E402
from smilejax.train import evaluate, examples, steps  # noqa: E402
from smilejax.train.options import train_options  # noqa: E402

METHOD = "realsmilenet"
RECIPES = {"paper": {"forget_bias": 0.0}, "default": {}}  # model-option overrides of each recipe


def recipe_config(config_path: str, recipe: str, epochs: int):
  config = runpy.run_path(config_path)["get_config"]()
  for key, value in RECIPES[recipe].items():
    config.models[METHOD][key] = value
  config.models[METHOD].epochs = epochs
  return config


def run_curve(config, prepared, fold: int, *, recipe: str, epochs: int, out) -> None:
  """Train one fold for ``epochs`` epochs, writing one JSON row per epoch to ``out``."""
  split = experiment.fold_split(prepared, config, fold)
  data = {
    name: experiment.split_examples(prepared, METHOD, ids)
    for name, ids in (("train", split.train_ids), ("val", split.val_ids), ("test", split.test_ids))
  }
  tcfg = train_options(config.train)
  bucket, bsz = int(tcfg["bucket"]), int(tcfg["batch_size"])
  st = steps.get_steps(METHOD, dict(config.models[METHOD]), tcfg)
  seed = experiment.model_seed(config, fold, METHOD)
  state = steps.init_state(st, data["train"].x[0], seed=seed)
  train = data["train"]
  y = train.y.astype(np.float32)
  for epoch in range(1, epochs + 1):
    t0 = time.time()
    losses, bces = [], []
    for idx in examples.epoch_order(len(train), batch_size=bsz, seed=seed, epoch=epoch - 1):
      x, lengths = examples.take_batch(train, idx, bucket=bucket)
      state, m = st.train_step(state, x, lengths, y[idx], np.ones(len(idx), np.float32))
      losses.append(float(m["loss"]))
      bces.append(float(m["bce"]))
    seconds = time.time() - t0
    variables = st.on_one_device(state.variables)
    row = {"recipe": recipe, "fold": fold, "epoch": epoch, "train_loss": np.mean(losses), "train_bce": np.mean(bces)}
    for name, ex in data.items():
      acc, loss = evaluate.accuracy_and_loss(evaluate.predict(st, variables, ex, batch_size=1, bucket=bucket), ex.y)
      row[f"{name}_acc"], row[f"{name}_eval_loss"] = acc, loss
    row.update(train_seconds=round(seconds, 2), n_train=len(train), n_val=len(data["val"]), n_test=len(data["test"]))
    out.write(json.dumps(row) + "\n")
    out.flush()
    print(
      f"{recipe} fold {fold} epoch {epoch}: train loss {row['train_loss']:.3f} (BCE {row['train_bce']:.3f}), "
      f"acc train {row['train_acc']:.3f} val {row['val_acc']:.3f} test {row['test_acc']:.3f} ({seconds:.1f} s)",
      flush=True,
    )


def read_rows(path: Path) -> list[dict]:
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot(rows: list[dict], path: Path) -> None:
  """Two panels: training BCE and accuracies (train, validation, test) per epoch, means over the folds."""
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
  colours = {"paper": "tab:grey", "default": "tab:blue"}
  for recipe in dict.fromkeys(r["recipe"] for r in rows):
    rr = [r for r in rows if r["recipe"] == recipe]
    folds = sorted({r["fold"] for r in rr})
    epochs = sorted({r["epoch"] for r in rr})
    epochs = [e for e in epochs if all(any(r["fold"] == f and r["epoch"] == e for r in rr) for f in folds)]

    def mean(key):
      return [np.mean([r[key] for r in rr if r["epoch"] == e]) for e in epochs]

    label = f"{recipe} (folds {','.join(map(str, folds))})"
    c = colours.get(recipe)
    ax_loss.plot(epochs, mean("train_bce"), color=c, label=label)
    ax_acc.plot(epochs, mean("train_acc"), color=c, ls=":", label=f"{recipe}: train")
    ax_acc.plot(epochs, mean("val_acc"), color=c, ls="--", label=f"{recipe}: validation")
    ax_acc.plot(epochs, mean("test_acc"), color=c, ls="-", label=f"{recipe}: test (diagnostic)")
  ax_loss.set(xlabel="epoch", ylabel="training BCE (without the L2 term)", title="RealSmileNet training loss")
  ax_acc.axhline(0.5, color="k", lw=0.5)
  ax_acc.set(xlabel="epoch", ylabel="accuracy (evaluation mode)", title="accuracy, mean over folds", ylim=(0.3, 1.0))
  for ax in (ax_loss, ax_acc):
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  ax_loss.legend(fontsize=8)
  ax_acc.legend(fontsize=7, ncol=2)
  fig.suptitle("Synthetic corpus (a test bed, not real smiles)", fontsize=10)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main() -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default=str(ROOT / "configs" / "default.py"))
  p.add_argument("--folds", default="1,2,3")
  p.add_argument("--epochs", type=int, default=20)
  p.add_argument("--recipes", default="paper,default")
  p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "learning_curve.jsonl"))
  p.add_argument("--plot", default=str(ROOT / "docs" / "learning_curve.png"))
  args = p.parse_args()
  runtime.setup(compile_cache=runtime.DEFAULT_COMPILE_CACHE, cpu_devices=0)
  folds = [int(f) for f in args.folds.split(",")]
  out_path = Path(args.out)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  for recipe in args.recipes.split(","):
    config = recipe_config(args.config, recipe, args.epochs)
    prepared = prepare.prepare(config)
    for fold in folds:
      done = [r for r in read_rows(out_path) if r["recipe"] == recipe and r["fold"] == fold]
      if len(done) >= args.epochs:
        continue
      if done:  # an interrupted (recipe, fold): run it again from the start
        rows = [r for r in read_rows(out_path) if not (r["recipe"] == recipe and r["fold"] == fold)]
        out_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
      with open(out_path, "a") as out:
        run_curve(config, prepared, fold, recipe=recipe, epochs=args.epochs, out=out)
  plot(read_rows(out_path), Path(args.plot))
  print(args.plot)
  return 0


if __name__ == "__main__":
  sys.exit(main())
