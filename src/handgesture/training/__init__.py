"""Training: a run from set-up to summary, and the loop it drives.

run            run_training: set up, restore, fit, finish (what the train task calls)
setup          device, seeds, the trainer (model, optimizer, scheduler, grad scaler)
engine         fit / train_one_epoch / evaluate, free of I/O (hooks do the side effects)
state          the full training state <-> a checkpoint dict, both ways
resume         where a run starts: its own checkpoint, a resume URI (continue or fine-tune), scratch
committer      when checkpoints are taken: every N steps / T seconds, each epoch, on SIGTERM
summary        RunSummary, what a finished run hands on
progress_bars  console progress
"""

from handgesture.training.run import run_training
from handgesture.training.summary import RunSummary

__all__ = ["RunSummary", "run_training"]
