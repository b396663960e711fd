#!/usr/bin/env python
"""Evaluate a saved model folder (or Hub id) on a dataset split: accuracy, per-class accuracy, confusion matrix,
prediction grid and attention maps (run with --help for the flags and files).

    python scripts/evaluate_model.py --model_dir outputs/cpu-small --dataset_name ../shared/data/cifar10 \
        --split validation

Installed from a wheel, `perceiver-study-evaluate` is the same command.
"""

import sys

from modeling_perceiver_study.evaluation import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
