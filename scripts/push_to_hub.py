#!/usr/bin/env python
"""Publish a trained model folder to the Hugging Face Hub in one commit.

    python scripts/push_to_hub.py --model_dir outputs/cpu-small --repo_id your-org/perceiver-study-cifar10 --dry_run
    python scripts/push_to_hub.py --model_dir outputs/cpu-small --repo_id your-org/perceiver-study-cifar10

The repository gets exactly: model.safetensors, config.json (auto_map for AutoConfig, AutoModel,
AutoModelForImageClassification, AutoImageProcessor), the code files, preprocessor_config.json, README.md (the model
card rendered from model_card.md and the run's files), training_curves.png and metrics.json. The token comes from
HF_TOKEN or `hf auth login`; it is never printed.
"""

import argparse
import sys
import tempfile
from pathlib import Path

from modeling_perceiver_study.publish import PublishError, resolve_token, stage_repository, upload


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="Output folder of a finished scripts/train.py run.")
    parser.add_argument("--repo_id", required=True, help="Hub repository, e.g. your-org/perceiver-study-cifar10.")
    parser.add_argument(
        "--dataset_id",
        default=None,
        help="Hub id of the training dataset for the card (default: the run's own, or uoft-cs/cifar10 "
        "for a local CIFAR-10 copy).",
    )
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--revision", default=None, help="Branch to commit to (created if needed; default main).")
    parser.add_argument("--commit_message", default="Upload Perceiver Study model")
    parser.add_argument("--staging_dir", default=None, help="Where to stage the files (default: a temporary folder).")
    parser.add_argument("--dry_run", action="store_true", help="Stage and list the files; upload nothing.")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    staging = Path(args.staging_dir) if args.staging_dir else Path(tempfile.mkdtemp(prefix="perceiver-study-hub-"))
    try:
        staged = stage_repository(args.model_dir, staging, args.repo_id, args.dataset_id)
        print(f"staged {len(staged)} files for {args.repo_id} in {staging}:")
        for item in staged:
            print(f"  {item.size:>12,d}  {item.path_in_repo}")
        if args.dry_run:
            print("dry run: nothing uploaded")
            return 0
        token = resolve_token()
        commit = upload(
            staged,
            args.repo_id,
            token,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
        )
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"published {args.repo_id} in one commit: {getattr(commit, 'commit_url', commit)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
