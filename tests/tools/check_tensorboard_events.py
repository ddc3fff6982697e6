#!/usr/bin/env python3
"""Reads a run's TensorBoard event files with TensorBoard's own reader and
checks the scalars moebench writes: run where the `tensorboard` package is
installed (the GPU machine has it).

Usage: check_tensorboard_events.py <tensorboard dir> <expected iterations>
"""
import sys

from tensorboard.backend.event_processing import event_accumulator


def main() -> int:
    directory, iterations = sys.argv[1], int(sys.argv[2])
    accumulator = event_accumulator.EventAccumulator(directory, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    print(f"{len(tags)} scalar tags: {', '.join(sorted(tags))}")
    for tag in ("lm loss", "learning-rate", "grad-norm", "throughput"):
        if tag not in tags:
            print(f"FAIL: tag {tag!r} missing")
            return 1
    steps = [event.step for event in accumulator.Scalars("lm loss")]
    if steps != list(range(1, iterations + 1)):
        print(f"FAIL: lm loss steps {steps[:5]}... are not 1..{iterations}")
        return 1
    losses = [event.value for event in accumulator.Scalars("lm loss")]
    print(f"ok: TensorBoard read {len(steps)} lm loss values, {losses[0]:.4f} -> {losses[-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
