#!/usr/bin/env python
"""Train a Perceiver on CIFAR-10 (or any image-classification dataset) with transformers.Trainer.

    python scripts/train.py configuration/recipes/cpu-small.json [--flag value ...]
    accelerate launch --config_file configuration/accelerate/multi_gpu.yaml scripts/train.py \
        configuration/recipes/seed.json
    torchrun --nproc_per_node 2 scripts/train.py ...

Installed from a wheel, `perceiver-study-train` is the same command, and the recipe paths above name the recipes
shipped with the package. Run with --help for every flag. Rerunning the same command after an interruption resumes
from the last checkpoint.
"""

from modeling_perceiver_study.training import cli

if __name__ == "__main__":
    cli()
