"""Train a Perceiver Study image classifier with `transformers.Trainer` (run by `scripts/train.py`).

Arguments follow transformers' image-classification example: data and model dataclasses plus every
`TrainingArguments` flag, through `HfArgumentParser`, optionally starting from one JSON recipe file.
"""

import errno
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    HfArgumentParser,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .augment import AugmentConfig, augment_batch, normalize
from .configuration_perceiver_study import PerceiverStudyConfig
from .data import (
    DataError,
    DecodedSplit,
    TensorImageDataset,
    channel_statistics,
    collate_batch,
    decode_split,
    find_column,
    limit_split,
    open_image_dataset,
    split_held_out,
)
from .export import complete_auto_map
from .files import (
    SHIPPED_ROOT,
    read_json,
    require_loadable_safetensors,
    require_model_location,
    shipped_path,
    write_json_atomic,
)
from .image_processing_perceiver_study import PerceiverStudyImageProcessor
from .metrics import build_compute_metrics
from .modeling_perceiver_study import PerceiverStudyForImageClassification, patches_to_tokens
from .plots import plot_training_curves
from .presets import preset_fields, unknown_config_fields
from .time_budget import (
    SCHEDULES,
    FitScheduleToBudgetCallback,
    TimeBudgetCallback,
    WarmupThenDecay,
    fitted_schedule_summary,
)
from .timing import TimeSplit
from .weight_average import WeightAverage

logger = logging.getLogger("perceiver_study.train")


@dataclass
class DataArguments:
    dataset_name: str = field(
        default="uoft-cs/cifar10",
        metadata={"help": "A Hub dataset id, a local dataset folder, or a parquet file (glob allowed)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset's configuration name."})
    image_column_name: str | None = field(default=None, metadata={"help": "Image column (default: img or image)."})
    label_column_name: str | None = field(default=None, metadata={"help": "Label column (default: label or labels)."})
    train_val_split: float = field(
        default=0.1, metadata={"help": "Fraction of train carved (seeded, stratified) as validation when none exists."}
    )
    test_split: float = field(
        default=0.0,
        metadata={
            "help": "Fraction of train carved as a final test split when the dataset has none (stratified, one fixed "
            "seed for every run, disjoint from validation), scored once at the end; 0: none."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training images."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation/test images."})
    skip_corrupt_images: bool = field(
        default=False, metadata={"help": "Drop (and count) images that cannot be decoded instead of failing."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where datasets caches downloads."})
    random_crop_padding: int = field(default=4, metadata={"help": "Random crop after this much padding; 0: off."})
    horizontal_flip: bool = field(default=True, metadata={"help": "Random horizontal flips."})
    randaugment_ops: int = field(
        default=0,
        metadata={
            "help": "RandAugment-style: random ops per image (brightness, contrast, saturation, erasing); 0: off."
        },
    )
    randaugment_magnitude: float = field(default=0.5, metadata={"help": "Strength of those ops, 0 to 1."})
    mixup_alpha: float = field(default=0.0, metadata={"help": "Mixup Beta(alpha, alpha); 0: off."})
    cutmix_alpha: float = field(default=0.0, metadata={"help": "CutMix Beta(alpha, alpha); 0: off."})
    mix_probability: float = field(default=1.0, metadata={"help": "Chance a batch is mixed when mixup/cutmix is on."})
    train_eval_samples: int = field(
        default=0,
        metadata={
            "help": "At each evaluation also score this many training images (one seeded subset, un-augmented), "
            "logged as train_subset_accuracy and train_subset_loss beside validation's; 0: off."
        },
    )


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Start from trained weights: a saved folder or a Hub id (loaded with trust_remote_code)."},
    )
    preset: str = field(
        default="cpu-small",
        metadata={
            "help": "Architecture preset from configuration/presets (or a JSON file) when training from scratch."
        },
    )
    config_overrides: str | None = field(
        default=None, metadata={"help": "Config fields over the preset, e.g. 'num_latents=64,drop_path_rate=0.1'."}
    )
    num_labels: int | None = field(
        default=None, metadata={"help": "Expected number of classes; an error if the dataset disagrees."}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel: sdpa (default), eager, or a flash attention variant."}
    )
    trust_remote_code: bool = field(default=True, metadata={"help": "Allow code files saved with the model."})


@dataclass
class PerceiverTrainingArguments(TrainingArguments):
    """`TrainingArguments` with defaults for this model on CIFAR-10 (every flag can still be given)."""

    output_dir: str = field(default="outputs/perceiver-study", metadata={"help": "Where the model and run files go."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to write a resumable checkpoint."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept."})
    logging_steps: float = field(default=50, metadata={"help": "Log every N steps."})
    num_train_epochs: float = field(default=10.0, metadata={"help": "Epochs."})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "Batch per device, training."})
    per_device_eval_batch_size: int = field(default=256, metadata={"help": "Batch per device, evaluation."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warmup: steps, or a ratio of all steps if < 1."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Must stay False: batches are built here."})
    ddp_find_unused_parameters: bool | None = field(default=False, metadata={"help": "Every parameter is used."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start over in output_dir: ignore its checkpoints and replace a finished run there. Without it, "
            "a rerun resumes from the last checkpoint when its settings match, and refuses when they differ."
        },
    )
    max_train_minutes: float | None = field(
        default=None, metadata={"help": "Stop training (after a final evaluation and checkpoint) past this budget."}
    )
    fit_schedule_to_budget: bool = field(
        default=False,
        metadata={
            "help": "With --max_train_minutes: time the third epoch and end the learning-rate schedule (cosine or "
            "linear) after as many whole epochs as the budget holds, so a slower machine anneals instead of being "
            "stopped at a high learning rate; never more epochs than --num_train_epochs."
        },
    )
    ema_decay: float = field(
        default=0.0,
        metadata={
            "help": "Keep an exponential moving average of the weights with this decay (e.g. 0.999) and evaluate and "
            "save the averaged weights; each validation also scores the trained weights (raw_accuracy); 0: off."
        },
    )
    time_split: bool = field(
        default=False,
        metadata={
            "help": "Measure where training time goes (step, data wait, augmentation, logging, evaluation, "
            "checkpoint) into metrics.json; on a GPU it synchronises at each boundary, which costs a little."
        },
    )


TRAIN_SUBSET_PREFIX = "train_subset"
RAW_PREFIX = "raw"  # with --ema_decay: the trained (not averaged) weights on the validation split


def training_subset(train: TensorImageDataset, size: int, seed: int) -> TensorImageDataset | None:
    """A fixed, seeded subset of the training images, scored as they are (the training step sees them augmented)."""
    if size <= 0:
        return None
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[: min(size, len(train))]
    return TensorImageDataset(DecodedSplit(train.images[chosen], train.labels[chosen], skipped_rows=[]))


class PerceiverTrainer(Trainer):
    """Trainer whose batches arrive as uint8 images and are augmented and normalized on the training device."""

    def __init__(self, *args, augment_config: AugmentConfig, image_mean, image_std, train_subset=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.augment_config = augment_config
        self.image_mean, self.image_std = image_mean, image_std
        if augment_config.mixes:
            self.label_smoother = None  # smoothing is folded into mixup/cutmix's soft targets instead
        self.train_subset = train_subset  # scored beside validation at each evaluation (train_eval_samples)
        self.time_split = TimeSplit(self.args.device) if self.args.time_split else None
        self._evaluating = False
        if self.time_split is not None:
            self.add_callback(TimeSplitCallback(self.time_split))
        self.weight_average = None
        if self.args.ema_decay:
            if self.is_fsdp_enabled:
                raise ValueError("--ema_decay is not supported with FSDP (each process holds only a shard)")
            self.weight_average = WeightAverage(self.model, self.args.ema_decay)
            self.add_callback(WeightAverageCallback(self.weight_average))

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """Trainer's schedule; with --fit_schedule_to_budget the same schedule as an object whose end can move."""
        if self.lr_scheduler is None and self.args.fit_schedule_to_budget:
            kind = getattr(self.args.lr_scheduler_type, "value", self.args.lr_scheduler_type)  # a plain str to save
            schedule = WarmupThenDecay(kind, self.args.get_warmup_steps(num_training_steps), num_training_steps)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, schedule)
        return super().create_scheduler(num_training_steps, optimizer)

    def charge_time(self, part: str) -> None:
        if self.time_split is not None:
            self.time_split.charge(part)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        self.charge_time("other")
        batches = super().get_batch_samples(epoch_iterator, num_batches, device)
        self.charge_time("data_wait")
        return batches

    def log(self, logs, *args, **kwargs):
        if self._evaluating:  # evaluation logs its metrics: part of the evaluation's time
            return super().log(logs, *args, **kwargs)
        self.charge_time("logging")  # since the step: reading the loss back for the log
        super().log(logs, *args, **kwargs)
        self.charge_time("logging")

    def _save_checkpoint(self, model, trial):
        self.charge_time("other")
        if self.weight_average is not None and self.args.should_save:
            # Written before Trainer's files, whose trainer_state.json (last) marks the checkpoint complete.
            folder = Path(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            folder.mkdir(parents=True, exist_ok=True)
            self.weight_average.save(folder)
        super()._save_checkpoint(model, trial)
        self.charge_time("checkpoint")

    def _save(self, output_dir: str | None = None, state_dict=None):
        """Trainer's save, without `training_args.bin`: a pickle nothing here reads back, which would keep a
        `--hub_token` in clear (run_args.json records the arguments, with tokens masked)."""
        super()._save(output_dir, state_dict)
        Path(output_dir or self.args.output_dir, "training_args.bin").unlink(missing_ok=True)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Trainer's evaluation; a validation pass is followed by one on the fixed training subset, if any, so the
        log holds training accuracy (without augmentation) beside validation accuracy at every evaluation. With a
        weight average (--ema_decay) the averaged weights are evaluated, and a validation pass of the trained ones
        is logged first under the `raw` prefix."""
        self.charge_time("other")
        self._evaluating = True
        validation = eval_dataset is None and metric_key_prefix == "eval"
        averaging = self.weight_average is not None and not self.weight_average.swapped
        try:
            if averaging and validation:  # the trained weights too, so each validation pairs them with their average
                super().evaluate(None, ignore_keys, RAW_PREFIX)
            if averaging:
                self.weight_average.swap()
            try:
                metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
                if self.train_subset is not None and validation:
                    metrics.update(super().evaluate(self.train_subset, ignore_keys, TRAIN_SUBSET_PREFIX))
            finally:
                if averaging:
                    self.weight_average.swap()
        finally:
            self._evaluating = False
        self.charge_time("evaluation")
        return metrics

    def get_eval_dataloader(self, eval_dataset=None):
        """Evaluation sees every image: `dataloader_drop_last` (which keeps a compiled training step's shapes static)
        applies to training only; Trainer would otherwise drop the last partial batch of the validation set too."""
        drop_last, self.args.dataloader_drop_last = self.args.dataloader_drop_last, False
        try:
            return super().get_eval_dataloader(eval_dataset)
        finally:
            self.args.dataloader_drop_last = drop_last

    def _prepare_inputs(self, inputs):
        inputs = super()._prepare_inputs(inputs)
        pixels = inputs["pixel_values"]
        if pixels.dtype != torch.uint8:
            return inputs
        if self.model.training:
            self.charge_time("step")
            num_labels = self.model.config.num_labels
            pixels, labels = augment_batch(
                pixels, inputs["labels"], self.augment_config, num_labels, self.image_mean, self.image_std
            )
            self.charge_time("augment")
            return {**inputs, "pixel_values": pixels, "labels": labels}
        return {**inputs, "pixel_values": normalize(pixels, self.image_mean, self.image_std)}


class WeightAverageCallback(TrainerCallback):
    """Moves the weight average toward the trained weights after every optimizer step."""

    def __init__(self, weight_average: WeightAverage):
        self.weight_average = weight_average

    def on_step_end(self, args, state, control, **kwargs):
        self.weight_average.update(state.global_step)


class TimeSplitCallback(TrainerCallback):
    """Opens and closes `TimeSplit`'s clock with training and charges each optimizer step's compute to `step`."""

    def __init__(self, time_split: TimeSplit):
        self.time_split = time_split

    def on_train_begin(self, args, state, control, **kwargs):
        self.time_split.start()

    def on_step_end(self, args, state, control, **kwargs):
        self.time_split.charge("step")
        self.time_split.steps += 1

    def on_train_end(self, args, state, control, **kwargs):
        self.time_split.charge("other")
        self.time_split.stop()


# ---------------------------------------------------------------------------------------------------------------------
# Arguments


def find_recipe(recipe_path: str) -> Path:
    """A recipe file by its path, or by its path in the checkout (`configuration/recipes/seed.json`) in the recipes
    shipped with the package, so the README's commands also work from a wheel install outside the checkout."""
    path = Path(recipe_path)
    if path.is_file():
        return path
    if not path.is_absolute() and shipped_path(path).is_file():
        return shipped_path(path)
    recipes = shipped_path("configuration/recipes").glob("*.json")
    shipped = sorted(str(recipe.relative_to(SHIPPED_ROOT)) for recipe in recipes)
    raise FileNotFoundError(f"recipe file {recipe_path} does not exist (the shipped recipes are {shipped})")


def recipe_to_argv(recipe_path: str) -> list[str]:
    """A JSON recipe (a flat object of argument names to values) as command-line arguments."""
    path = find_recipe(recipe_path)
    try:
        recipe = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"recipe file {recipe_path} is not valid JSON: {error}") from error
    argv = []
    for key, value in recipe.items():
        if key.startswith("_"):
            continue
        values = value if isinstance(value, list) else [value]
        argv += [f"--{key}", *(json.dumps(v) if isinstance(v, (bool, dict)) else str(v) for v in values)]
    return argv


def parse_arguments(argv: list[str] | None = None):
    """`train.py [recipe.json] [--flag value ...]`: flags given on the command line override the recipe's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".json"):
        argv = recipe_to_argv(argv[0]) + argv[1:]
    parser = HfArgumentParser((ModelArguments, DataArguments, PerceiverTrainingArguments))
    return parser.parse_args_into_dataclasses(args=argv)


def parse_overrides(text: str | None) -> dict:
    """'a=1,b=true,c=mean' -> {'a': 1, 'b': True, 'c': 'mean'} (values read as JSON where they parse)."""
    overrides = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise ValueError(f"config_overrides item {item!r} must look like name=value")
        name, raw = (piece.strip() for piece in item.split("=", 1))
        try:
            overrides[name] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[name] = raw
    unknown = unknown_config_fields(overrides)
    if unknown:
        raise ValueError(f"config_overrides names unknown config fields {unknown}")
    return overrides


# ---------------------------------------------------------------------------------------------------------------------
# Data


@dataclass
class PreparedData:
    train: TensorImageDataset
    validation: TensorImageDataset
    test: TensorImageDataset | None
    label_names: list[str]
    skipped_rows: dict[str, list[int]]


def prepare_data(data_args: DataArguments, image_size: int, num_channels: int, seed: int) -> PreparedData:
    opened = open_image_dataset(
        data_args.dataset_name,
        image_column=data_args.image_column_name,
        label_column=data_args.label_column_name,
        dataset_config_name=data_args.dataset_config_name,
        cache_dir=data_args.cache_dir,
    )
    dataset, image_column, label_column, names = (
        opened.splits,
        opened.image_column,
        opened.label_column,
        opened.label_names,
    )
    if len(names) < 2:
        raise DataError(
            f"label column {label_column!r} of {data_args.dataset_name!r} names {len(names)} class(es) {names}: a "
            "classifier needs at least two (one class would score 100 % by construction)"
        )
    train, validation, test = split_held_out(
        dataset, label_column, data_args.train_val_split, seed, data_args.test_split
    )
    for split_name, split in (("validation", validation), ("test", test)):
        if split is not None:
            find_column(split.column_names, image_column, (), "image", split_name)
            find_column(split.column_names, label_column, (), "label", split_name)

    splits = {
        "train": limit_split(train, data_args.max_train_samples, seed),
        "validation": limit_split(validation, data_args.max_eval_samples, seed),
        "test": limit_split(test, data_args.max_eval_samples, seed) if test is not None else None,
    }
    decoded = {
        name: decode_split(
            split, image_column, label_column, image_size, num_channels, data_args.skip_corrupt_images, name
        )
        for name, split in splits.items()
        if split is not None
    }
    for name, split in decoded.items():
        if len(split) == 0:
            raise DataError(f"split {name!r} of {data_args.dataset_name!r} has no usable images")
    if decoded["train"].labels.unique().numel() < 2:
        raise DataError(
            f"the training images of {data_args.dataset_name!r} all have one label "
            f"({names[int(decoded['train'].labels[0])]!r}): a classifier needs examples of at least two classes"
        )
    for name, split in decoded.items():
        if split.labels.min() < 0 or split.labels.max() >= len(names):
            raise DataError(f"split {name!r} has labels outside 0..{len(names) - 1} ({len(names)} label names)")
    return PreparedData(
        train=TensorImageDataset(decoded["train"]),
        validation=TensorImageDataset(decoded["validation"]),
        test=TensorImageDataset(decoded["test"]) if "test" in decoded else None,
        label_names=names,
        skipped_rows={name: split.skipped_rows for name, split in decoded.items() if split.skipped_rows},
    )


# ---------------------------------------------------------------------------------------------------------------------
# Model


def label_maps(names: list[str]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}


def replace_classifier(model: PerceiverStudyForImageClassification, names: list[str]):
    """A fresh linear head for a new label set; the encoder keeps its trained weights."""
    model.classifier = torch.nn.Linear(model.config.latent_dim, len(names))
    model._init_weights(model.classifier)
    model.num_labels = len(names)
    model.config.num_labels = len(names)
    for key, value in label_maps(names).items():
        setattr(model.config, key, value)
    return model


def build_model(model_args: ModelArguments, names: list[str] | None = None, config_only: bool = False):
    """From a preset (plus overrides) or from trained weights; the head matches the dataset's labels."""
    overrides = parse_overrides(model_args.config_overrides)
    if model_args.attn_implementation:
        overrides["attn_implementation"] = model_args.attn_implementation
    if model_args.model_name_or_path is None:
        fields = {**preset_fields(model_args.preset), **overrides}
        if names is not None:
            fields.update(num_labels=len(names), **label_maps(names))
        config = PerceiverStudyConfig(**fields)
        if config_only:
            return config
        model = PerceiverStudyForImageClassification(config)
    else:
        require_model_location(model_args.model_name_or_path)
        if config_only:  # sizes for decoding the data; the weights are loaded once, below
            return AutoConfig.from_pretrained(
                model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code, **overrides
            )
        model = AutoModelForImageClassification.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code, **overrides
        )
        old_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if names is not None and old_names != names:
            logger.info("label set differs from the checkpoint's %s: new head for %s", old_names, names)
            replace_classifier(model, names)
    return complete_auto_map(model)


def fit_patch_whitening(model, train: TensorImageDataset, image_mean, image_std, max_images: int = 5000) -> None:
    """Fit a new model's patch whitening (config `patch_whitening`) on the first `max_images` training images,
    normalised as the model sees them and not augmented. The training split's order is fixed by the seed, so every
    process of a distributed run fits the same map."""
    images = normalize(train.images[:max_images], image_mean, image_std)  # (n, C, H, W)
    patches = patches_to_tokens(images, model.config.input_patch_size).flatten(0, 1)  # (n * M, Fp)
    model.perceiver.patch_whitening.fit(patches)
    logger.info("fitted the patch whitening on %d patches of %d training images", len(patches), len(images))


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be resumed from, or None. The Trainer writes `trainer_state.json` last, so its presence
    marks a checkpoint whose saving finished; the weights must also open (a truncated file does not)."""
    state = path / "trainer_state.json"
    weights = sorted(path.glob("model*.safetensors"))
    if not state.is_file() or not weights:
        return "interrupted while saving: no trainer_state.json or no weights"
    try:
        json.loads(state.read_text())
    except (json.JSONDecodeError, OSError) as error:
        return f"trainer_state.json does not read ({error})"
    for file in weights:
        try:
            require_loadable_safetensors(file)
        except ValueError as error:
            return str(error)
    return None


def checkpoints_in_order(output_dir: str | Path) -> list[Path]:
    """The run's `checkpoint-<step>` folders, earliest first (none if the folder does not exist)."""
    found = [path for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*") if path.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda path: int(path.name.split("-")[-1]))


def last_complete_checkpoint(output_dir: str) -> Path | None:
    for path in reversed(checkpoints_in_order(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("skipping checkpoint %s: %s", path, problem)
    return None


def resolve_resume_checkpoint(training_args: TrainingArguments) -> str | None:
    """An explicit --resume_from_checkpoint must be a complete checkpoint; `false` or --overwrite_output_dir start
    over; otherwise resume from the last complete checkpoint, if any."""
    explicit = training_args.resume_from_checkpoint
    if getattr(training_args, "overwrite_output_dir", False) or explicit in ("False", "false"):
        return None
    if explicit not in (None, ""):
        if explicit in ("True", "true"):
            found = last_complete_checkpoint(training_args.output_dir)
            if found is None:
                raise FileNotFoundError(f"--resume_from_checkpoint: no checkpoint in {training_args.output_dir}")
            return str(found)
        path = Path(explicit)
        if not path.is_dir():
            raise FileNotFoundError(f"--resume_from_checkpoint {explicit}: no such checkpoint folder")
        problem = checkpoint_problem(path)
        if problem is not None:
            raise ValueError(
                f"--resume_from_checkpoint {explicit}: not a usable checkpoint, {problem} (found "
                f"{sorted(p.name for p in path.iterdir())})"
            )
        return str(path)
    found = last_complete_checkpoint(training_args.output_dir)
    if found is not None:
        logger.info("resuming from %s", found)
    return str(found) if found else None


# ---------------------------------------------------------------------------------------------------------------------
# Reruns into an output_dir that already holds a run

# The training arguments a run's weights depend on (a different logging interval or evaluation batch does not make
# another run). Model and data arguments all count.
RESULT_DEFINING_TRAINING_ARGS = (
    "num_train_epochs",
    "max_steps",
    "max_train_minutes",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "optim",
    "lr_scheduler_type",
    "warmup_steps",
    "label_smoothing_factor",
    "seed",
    "data_seed",
    "bf16",
    "fp16",
    "dataloader_drop_last",
    "ema_decay",
    "fit_schedule_to_budget",
)


def run_settings(run_args: dict) -> dict:
    """`run_args.json`'s content reduced to what defines the run, flattened to `section.name` keys."""
    settings = {f"{section}.{key}": value for section in ("model", "data") for key, value in run_args[section].items()}
    training = run_args["training"]
    settings.update({f"training.{key}": training[key] for key in RESULT_DEFINING_TRAINING_ARGS if key in training})
    return json.loads(json.dumps(settings, default=str))  # as run_args.json holds them


def current_run_args(model_args, data_args, training_args) -> dict:
    return {"model": asdict(model_args), "data": asdict(data_args), "training": training_args.to_dict()}


def check_output_dir(output_dir: str) -> None:
    """Found before the data is decoded, not after an epoch: an output_dir that is a file or cannot be written."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file, not a folder")
    existing = next(parent for parent in (path, *path.absolute().parents) if parent.exists())
    if not existing.is_dir():
        raise ValueError(f"--output_dir {output_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--output_dir {output_dir}: {existing} is not writable by this user")


# The trackers the recipes ask for, and where a user gets each: without it a run goes on untracked.
TRACKER_INSTALL = {"tensorboard": "pip install 'perceiver-study[track]'"}


def drop_missing_trackers(training_args) -> None:
    """The recipes log to TensorBoard (event files under <output_dir>/runs/); where the package is not installed the
    run goes on without it and says so once, instead of failing in Trainer's setup."""
    from transformers.integrations import is_tensorboard_available

    if "tensorboard" in training_args.report_to and not is_tensorboard_available():
        logger.warning(
            "tensorboard is not installed, so this run is not tracked (%s to track it; --report_to none silences this)",
            TRACKER_INSTALL["tensorboard"],
        )
        training_args.report_to = [name for name in training_args.report_to if name != "tensorboard"]


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 on this CPU's own instructions (AVX512 or AMX) rather than emulating it."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def warn_if_bf16_is_emulated(training_args) -> None:
    """The recipes train in bf16 autocast, which is the fast path on CPUs with AVX512-BF16 or AMX. Elsewhere (e.g. an
    AVX2-only CPU) bf16 is emulated: one seed-convfree training step ran 17 times slower than in float32 on this
    project's machine limited to AVX2 (results/cpu-bf16/), and a time-budgeted recipe trains that much less. The run
    stays correct, so this is a warning that names the fix, not an error."""
    on_cpu = training_args.use_cpu or not torch.cuda.is_available()
    if training_args.bf16 and on_cpu and not cpu_has_native_bf16():
        logger.warning(
            "--bf16 on a CPU without native bfloat16 instructions (%s): bf16 autocast is emulated here and trains "
            "many times slower than float32 (17x for seed-convfree on AVX2); pass --bf16 false",
            torch.backends.cpu.get_cpu_capability(),
        )


class RunAlreadyFinished(Exception):
    """The output_dir holds a finished run of these very settings: a rerun is a no-op."""

    def __init__(self, metrics: dict):
        super().__init__("finished run")
        self.metrics = metrics


def default_settings() -> dict:
    """The model and data flags' defaults and the result-defining training flags', keyed as `run_settings` keys
    them (so a run recorded before a flag existed matches a rerun that leaves the flag at its default)."""
    return {
        f"{section}.{item.name}": item.default
        for section, arguments in (
            ("model", ModelArguments),
            ("data", DataArguments),
            ("training", PerceiverTrainingArguments),
        )
        for item in fields(arguments)
        if section != "training" or item.name in RESULT_DEFINING_TRAINING_ARGS
    }


def check_previous_run(model_args, data_args, training_args) -> None:
    """A rerun into an output_dir with a run in it (finished: metrics.json; started: run_args.json) must be the same
    run: then a finished one is left untouched (RunAlreadyFinished) and an unfinished one resumes. Other settings are
    refused, naming what differs; --overwrite_output_dir starts over."""
    output_dir = Path(training_args.output_dir)
    if training_args.overwrite_output_dir or not (output_dir / "run_args.json").is_file():
        return
    try:
        recorded = run_settings(read_json(output_dir / "run_args.json"))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{output_dir / 'run_args.json'} is not a run record ({error}): pass --overwrite_output_dir to start over"
        ) from error
    current = run_settings(current_run_args(model_args, data_args, training_args))
    defaults = default_settings()
    differences = [
        f"{key}: {recorded.get(key)!r} there, {current.get(key)!r} now"
        for key in sorted(set(recorded) | set(current))
        if recorded.get(key) != current.get(key)
        # a flag added after the run was recorded, used at its default, is the run as recorded
        and not (key not in recorded and key in defaults and current.get(key) == defaults[key])
    ]
    finished = (output_dir / "metrics.json").is_file()
    if differences:
        raise ValueError(
            f"output_dir {output_dir} holds {'a finished' if finished else 'an unfinished'} run with other settings ("
            + "; ".join(differences)
            + "). Pass --overwrite_output_dir to start over there, or choose another --output_dir"
        )
    if finished:
        raise RunAlreadyFinished(read_json(output_dir / "metrics.json"))


# ---------------------------------------------------------------------------------------------------------------------
# Run files


def strip_prefix(metrics: dict, prefix: str) -> dict:
    """The metrics whose names start with `prefix`, without it."""
    return {key.removeprefix(prefix): value for key, value in metrics.items() if key.startswith(prefix)}


def best_validation_accuracy(log_history: list[dict]) -> float | None:
    scores = [entry["eval_accuracy"] for entry in log_history if "eval_accuracy" in entry]
    return max(scores) if scores else None


def setup_logging(training_args: TrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    # This script's own messages (resuming, sizes, results) at INFO on the main process; transformers' as configured.
    own_level = logging.INFO if training_args.should_log else logging.WARNING
    logger.setLevel(own_level)
    logging.getLogger("modeling_perceiver_study").setLevel(own_level)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())


# ---------------------------------------------------------------------------------------------------------------------
# Main


class SetupError(Exception):
    """A problem the user can fix, said in one line: the run's input (arguments, dataset, checkpoint), found before
    any training step, or a full disk while saving."""


def check_schedule_fitting(training_args) -> None:
    if not training_args.max_train_minutes:
        raise ValueError("--fit_schedule_to_budget needs a budget to fit: pass --max_train_minutes")
    schedule = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    if schedule not in SCHEDULES:
        raise ValueError(f"--fit_schedule_to_budget needs --lr_scheduler_type in {SCHEDULES}, got {schedule!r}")
    if training_args.lr_scheduler_kwargs:
        raise ValueError("--fit_schedule_to_budget builds its own schedule, without --lr_scheduler_kwargs")


def build_trainer(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: PerceiverTrainingArguments,
    model_builder: Callable | None = None,
):
    """Everything before the first step: checkpoint to resume, data, model, Trainer. `model_builder(model_args,
    label_names)` replaces `build_model`, e.g. to train another implementation through the same pipeline."""
    set_seed(training_args.seed)
    if training_args.max_steps <= 0 and not training_args.num_train_epochs > 0:
        raise ValueError(
            f"--num_train_epochs must be > 0 (or --max_steps set), got {training_args.num_train_epochs}: a run that "
            "takes no step would save an untrained model as if trained"
        )
    augment_config = AugmentConfig(  # checked before the data is decoded: bad values fail in seconds
        random_crop_padding=data_args.random_crop_padding,
        horizontal_flip=data_args.horizontal_flip,
        randaugment_ops=data_args.randaugment_ops,
        randaugment_magnitude=data_args.randaugment_magnitude,
        mixup_alpha=data_args.mixup_alpha,
        cutmix_alpha=data_args.cutmix_alpha,
        mix_probability=data_args.mix_probability,
        label_smoothing=training_args.label_smoothing_factor,
    )
    if training_args.fit_schedule_to_budget:
        check_schedule_fitting(training_args)
    if not 0.0 <= training_args.ema_decay < 1.0:
        raise ValueError(f"--ema_decay must be in [0, 1) (0: off, e.g. 0.999), got {training_args.ema_decay}")
    if data_args.train_eval_samples < 0:
        raise ValueError(f"--train_eval_samples must be >= 0 (0: off), got {data_args.train_eval_samples}")
    check_output_dir(training_args.output_dir)
    drop_missing_trackers(training_args)
    warn_if_bf16_is_emulated(training_args)
    check_previous_run(model_args, data_args, training_args)
    resume_from = resolve_resume_checkpoint(training_args)
    config = build_model(model_args, config_only=True)
    with training_args.main_process_first(desc="load and decode the dataset"):
        data = prepare_data(data_args, config.image_size, config.num_channels, training_args.seed)
    if model_args.num_labels is not None and model_args.num_labels != len(data.label_names):
        raise DataError(
            f"--num_labels {model_args.num_labels} disagrees with the dataset, which has {len(data.label_names)} "
            f"labels: {data.label_names}"
        )
    global_batch = training_args.per_device_train_batch_size * max(training_args.world_size, 1)
    if training_args.dataloader_drop_last and len(data.train) < global_batch:
        raise DataError(
            f"the training split has {len(data.train)} images, fewer than one batch ({global_batch}), and "
            "--dataloader_drop_last drops the partial batch: no step would run. Lower --per_device_train_batch_size "
            "or pass --dataloader_drop_last false"
        )
    set_seed(training_args.seed)  # the model's initialisation does not depend on data loading
    model = (model_builder or build_model)(model_args, data.label_names)
    processor = image_processor_for(model.config, data.train)
    if getattr(model.config, "patch_whitening", False) and model_args.model_name_or_path is None:
        fit_patch_whitening(model, data.train, processor.image_mean, processor.image_std)  # trained weights keep theirs
    callbacks = [TimeBudgetCallback(training_args.max_train_minutes)] if training_args.max_train_minutes else []
    if training_args.fit_schedule_to_budget:
        callbacks.append(FitScheduleToBudgetCallback(training_args.max_train_minutes))
    trainer = PerceiverTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=collate_batch,
        processing_class=processor,
        compute_metrics=build_compute_metrics(model.config.num_labels),
        callbacks=callbacks,
        augment_config=augment_config,
        image_mean=processor.image_mean,
        image_std=processor.image_std,
        train_subset=training_subset(data.train, data_args.train_eval_samples, training_args.seed),
    )
    require_fsdp_when_launched_with_it(trainer)
    return trainer, data, resume_from


def image_processor_for(config, train: TensorImageDataset) -> PerceiverStudyImageProcessor:
    """The processor saved with the model, so inference normalises as training did: CIFAR-10's statistics for
    3-channel models (the recipes' and the Hub model's), the training split's own for 1- or 4-channel ones."""
    size = {"height": config.image_size, "width": config.image_size}
    num_channels = getattr(config, "num_channels", 3)
    if num_channels == 3:
        return PerceiverStudyImageProcessor(size=size)
    mean, std = channel_statistics(train.images)
    logger.info("normalising %d channels with the training split's mean %s and std %s", num_channels, mean, std)
    return PerceiverStudyImageProcessor(size=size, image_mean=mean, image_std=std, do_convert_rgb=False)


def require_fsdp_when_launched_with_it(trainer) -> None:
    """`accelerate launch` with an FSDP config sets ACCELERATE_USE_FSDP, but accelerate applies FSDP only to GPU-type
    devices: on CPUs it would silently train as plain DDP, every process holding the whole model."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and not trainer.is_fsdp_enabled:
        raise ValueError(
            "launched with an FSDP configuration (ACCELERATE_USE_FSDP=true), but accelerate set up "
            f"{trainer.accelerator.distributed_type.value} without FSDP (accelerate shards only across GPUs and "
            "similar accelerators): this run would be plain DDP. On CPUs use configuration/accelerate/multi_gpu.yaml "
            "(gloo) or torchrun"
        )


def train(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: PerceiverTrainingArguments,
    model_builder: Callable | None = None,
) -> dict:
    setup_logging(training_args)
    try:
        trainer, data, resume_from = build_trainer(model_args, data_args, training_args, model_builder)
    except RunAlreadyFinished as finished:
        logger.info(
            "%s holds a finished run of these settings: nothing to do, every file left as it is "
            "(--overwrite_output_dir trains it again)",
            training_args.output_dir,
        )
        return finished.metrics
    except (ValueError, FileNotFoundError, TypeError) as error:  # bad input, named by the message
        raise SetupError(str(error)) from error
    if trainer.is_world_process_zero():
        output_dir = Path(training_args.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        if training_args.overwrite_output_dir:  # the old run's record goes; its weights are replaced at the end
            (output_dir / "metrics.json").unlink(missing_ok=True)
        # Written at the start, so a rerun can tell whether it continues this run (see check_previous_run).
        write_json_atomic(output_dir / "run_args.json", current_run_args(model_args, data_args, training_args))
    model = trainer.model
    logger.info(
        "training %s (%.2fM parameters) on %d images, validating on %d%s",
        type(model).__name__ if model_builder else model_args.model_name_or_path or f"preset {model_args.preset}",
        sum(p.numel() for p in model.parameters()) / 1e6,
        len(data.train),
        len(data.validation),
        f", testing on {len(data.test)}" if data.test is not None else "",
    )
    if training_args.world_size > 1:
        logger.info(
            "%d processes (%s%s)",
            training_args.world_size,
            training_args.parallel_mode.value,
            ", parameters sharded by FSDP" if trainer.is_fsdp_enabled else "",
        )
    if trainer.weight_average is not None and resume_from:
        try:
            trainer.weight_average.load(resume_from)
        except (FileNotFoundError, ValueError) as error:
            raise SetupError(str(error)) from error
    started = time.monotonic()
    try:
        train_result = trainer.train(resume_from_checkpoint=resume_from)
        train_seconds = time.monotonic() - started
        if trainer.weight_average is not None:
            trainer.weight_average.swap()  # from here on the model holds the averaged weights: saved and evaluated
        trainer.save_model()  # weights, config (with auto_map), image processor and code files, in output_dir
        trainer.save_state()
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        saved = last_complete_checkpoint(training_args.output_dir)
        raise SetupError(
            f"no space left on the device while writing to {training_args.output_dir} ({error}). "
            + (f"The last complete checkpoint, {saved}, is intact: " if saved else "No checkpoint was complete: ")
            + "free some space and rerun the same command to "
            + ("resume from it." if saved else "start again.")
        ) from error

    metrics = {
        "train": {
            **train_result.metrics,
            "num_samples": len(data.train),
            "wall_seconds": train_seconds,
            "world_size": training_args.world_size,
        }
    }
    if training_args.fit_schedule_to_budget:
        metrics["train"]["schedule"] = fitted_schedule_summary(
            trainer.lr_scheduler, trainer.state, training_args.num_train_epochs
        )
    final = trainer.evaluate(metric_key_prefix="eval")
    metrics["validation"] = strip_prefix(final, "eval_")
    if trainer.train_subset is not None:
        metrics["train_subset"] = strip_prefix(final, f"{TRAIN_SUBSET_PREFIX}_")
    if data.test is not None:
        metrics["test"] = strip_prefix(trainer.evaluate(data.test, metric_key_prefix="test"), "test_")
    metrics["best_validation_accuracy"] = best_validation_accuracy(
        trainer.state.log_history + [{"eval_accuracy": metrics["validation"]["accuracy"]}]
    )
    if trainer.time_split is not None:
        metrics["time_split"] = trainer.time_split.summary()
        logger.info(trainer.time_split.describe())
    metrics["skipped_corrupt_images"] = {name: len(rows) for name, rows in data.skipped_rows.items()}
    metrics["dataset"] = data_args.dataset_name
    metrics["label_names"] = data.label_names
    if trainer.is_world_process_zero():
        output_dir = Path(training_args.output_dir)
        write_json_atomic(output_dir / "metrics.json", metrics)  # the finished-run marker (run_args.json: at start)
        plot_training_curves(output_dir / "trainer_state.json", output_dir / "training_curves.png")
        logger.info("validation accuracy %.4f; model folder ready in %s", metrics["validation"]["accuracy"], output_dir)
    return metrics


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, training_args = parse_arguments(argv)
    try:
        return train(model_args, data_args, training_args)
    finally:
        # A clean shutdown of the process group avoids most aborts at interpreter exit under DDP.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def cli() -> None:
    """`scripts/train.py` and the `perceiver-study-train` command: a setup problem is one line, exit status 2."""
    try:
        main()
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
