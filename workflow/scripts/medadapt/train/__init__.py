"""Continual pre-training: pack (tokenize + chunk), schedule (checkpoint steps), plan (the run's
arithmetic, no torch), compute (FLOPs), trainer (the `train` stage: Trainer glue, checkpoint saving)."""
