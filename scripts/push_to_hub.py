#!/usr/bin/env python
"""Publish a trained model folder to the Hugging Face Hub in one commit (`--dry_run` stages and lists the files).

    python scripts/push_to_hub.py --model_dir outputs/cpu-small --repo_id your-org/perceiver-study-cifar10 --dry_run

Installed from a wheel, `perceiver-study-push` is the same command. Run with --help for what the repository gets.
"""

import sys

from modeling_perceiver_study.publish import push_main

if __name__ == "__main__":
    sys.exit(push_main())
