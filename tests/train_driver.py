"""Runs checkpoint segments of the train stage in a process of its own (or as a torchrun worker), for
the resume tests: `python train_driver.py SPEC.json`.

SPEC: {"segments": [ckpt names, run in order, each from the previous one's checkpoint],
       "kwargs": train() arguments except previous/out_dir/ckpt, "out": directory of raw-cNN dirs,
       "blocks": file recording every block the model sees ("<step> <md5 of its token ids>" per line,
       rank 0 only; "start <step>" where an attempt begins) or null,
       "signal_at": {"step": N, "signal": "SIGURG" | "SIGKILL"} or null: rank 0 sends it to its own
       process at the end of optimizer step N - a real signal, not a clean exit,
       "probe": directory or null: each rank writes probe-<rank>.json there once the model is sharded
       ({parameter: [is a DTensor, local shape, global shape]})}
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from medadapt.train import engine, trainer  # noqa: E402

STEP = {"current": 0}


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    rank = int(os.environ.get("RANK", "0"))
    blocks = open(spec["blocks"], "a", buffering=1) if spec.get("blocks") and rank == 0 else None
    load_model = engine.load_model

    def recording_load_model(*args, **kwargs):
        model = load_model(*args, **kwargs)
        if blocks:
            def record(module, args, kwargs):
                for row in kwargs["input_ids"]:
                    digest = hashlib.md5(row.numpy().astype("int64").tobytes()).hexdigest()
                    blocks.write(f"{STEP['current'] + 1} {digest}\n")
            model.register_forward_pre_hook(record, with_kwargs=True)
        return model

    engine.load_model = recording_load_model
    after_step = engine.Trainer.after_step
    at = spec.get("signal_at")

    def step_end(self, step, stop):
        out = after_step(self, step, stop)
        STEP["current"] = step
        if at and rank == 0 and step == at["step"]:
            if blocks:
                blocks.flush()
            os.kill(os.getpid(), getattr(signal, at["signal"]))
        return out

    run = engine.Trainer.run

    def begin(self, stop):
        STEP["current"] = self.step  # where this attempt resumed
        if blocks:
            blocks.write(f"start {self.step}\n")
        if spec.get("probe"):
            from torch.distributed.tensor import DTensor

            facts = {name: [isinstance(p, DTensor), list(p.to_local().shape if isinstance(p, DTensor) else p.shape),
                            list(p.shape)] for name, p in self.model.named_parameters()}
            Path(spec["probe"]).mkdir(parents=True, exist_ok=True)
            (Path(spec["probe"]) / f"probe-{rank}.json").write_text(json.dumps(facts))
        return run(self, stop)

    engine.Trainer.after_step = step_end
    engine.Trainer.run = begin
    out = Path(spec["out"])
    for ckpt in spec["segments"]:
        index = int(ckpt[1:]) - 1
        previous = str(out / f"raw-c{index:02d}") if index else None
        trainer.train(previous=previous, out_dir=str(out / f"raw-{ckpt}"), ckpt=ckpt, **spec["kwargs"])


if __name__ == "__main__":
    main(sys.argv[1])
