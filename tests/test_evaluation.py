"""scripts/evaluate_model.py on a trained tiny model: numbers agree with the model, figures are written, and the
held-out split is the one the training run carved."""

import json
import shutil

import numpy as np
import pytest
import torch

from modeling_perceiver_study.data import DataError
from modeling_perceiver_study.evaluation import confusion_matrix, evaluate_main, evaluate_model_folder
from modeling_perceiver_study.plots import sharpest_attention_maps
from modeling_perceiver_study.training import SetupError
from tests.helpers import train_tiny


def run_evaluation(model_dir, dataset, output_dir, *extra) -> int:
    arguments = ["--model_dir", str(model_dir), "--dataset_name", str(dataset), "--output_dir", str(output_dir)]
    return evaluate_main([*arguments, *extra])


@pytest.fixture(scope="module")
def trained(synthetic_parquet, tmp_path_factory):
    output = tmp_path_factory.mktemp("trained") / "run"
    metrics = train_tiny(synthetic_parquet, output, "--num_train_epochs", "3", "--seed", "11", "--save_strategy", "no")
    return output, metrics


def test_evaluation_reproduces_the_training_runs_validation_accuracy(trained, synthetic_parquet, tmp_path, capsys):
    model_dir, metrics = trained
    assert run_evaluation(str(model_dir), str(synthetic_parquet), str(tmp_path / "eval")) == 0
    results = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert results["num_samples"] == metrics["validation"]["num_samples"] == 24
    assert results["accuracy"] == pytest.approx(metrics["validation"]["accuracy"], abs=1e-9)
    assert "seed 11" in results["dataset"]
    matrix = np.array(results["confusion_matrix"]["rows_true_columns_predicted"])
    assert matrix.sum() == 24 and matrix.trace() / 24 == pytest.approx(results["accuracy"])
    per_class = results["per_class_accuracy"]
    assert set(per_class) == {"red", "green", "blue", "yellow"}
    assert np.mean(list(per_class.values())) == pytest.approx(results["accuracy"])  # balanced split
    for name in ("confusion_matrix.png", "predictions.png", "attention_maps.png"):
        assert (tmp_path / "eval" / name).read_bytes()[:4] == b"\x89PNG", name
    assert '"accuracy"' in capsys.readouterr().out


def test_test_time_flip_adds_the_mirror_images_logits_beside_the_plain_accuracy(trained, synthetic_parquet, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from modeling_perceiver_study.augment import normalize
    from modeling_perceiver_study.evaluation import load_evaluation_data, predict, training_split_settings

    model_dir, metrics = trained
    assert run_evaluation(model_dir, synthetic_parquet, tmp_path / "eval", "--test_time_flip") == 0
    results = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert results["accuracy"] == pytest.approx(metrics["validation"]["accuracy"], abs=1e-9)  # the headline stays plain
    model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir, trust_remote_code=True)
    seed, fraction, test_fraction = training_split_settings(model_dir)
    data = load_evaluation_data(
        str(synthetic_parquet), "validation", 32, 3, seed, fraction, None, None, None, test_fraction
    )
    pixels = normalize(data.images, processor.image_mean, processor.image_std)
    with torch.no_grad():
        summed = model(pixels).logits + model(pixels.flip(-1)).logits
    expected = (summed.argmax(-1) == data.labels).float().mean().item()
    # the mirror image is the left-right flip (on these colour classes accuracy alone could not tell flips apart)
    mirrored = predict(model, data.images, processor.image_mean, processor.image_std, mirrored=True)
    torch.testing.assert_close(mirrored, summed - model(pixels).logits.detach(), atol=1e-5, rtol=1e-5)
    assert results["accuracy_flip_averaged"] == pytest.approx(expected, abs=1e-9)
    assert run_evaluation(model_dir, synthetic_parquet, tmp_path / "plain") == 0
    assert "accuracy_flip_averaged" not in json.loads((tmp_path / "plain" / "evaluation.json").read_text())


def test_evaluation_refuses_a_dataset_with_other_labels(trained, tmp_path, capsys):
    from tests.conftest import write_image_parquet

    other = write_image_parquet(tmp_path / "other.parquet", per_class=4, labels=["a", "b", "c", "d"])
    model_dir, _ = trained
    assert run_evaluation(str(model_dir), str(other), str(tmp_path / "eval"), "--split", "train") == 2
    assert "differ from the model's" in capsys.readouterr().err


def test_missing_split_lists_the_splits(trained, synthetic_parquet, tmp_path, capsys):
    model_dir, _ = trained
    assert run_evaluation(str(model_dir), str(synthetic_parquet), str(tmp_path / "eval"), "--split", "holdout") == 2
    assert "has no split 'holdout'; its splits are ['train']" in capsys.readouterr().err


def test_confusion_matrix_counts_pairs():
    matrix = confusion_matrix(torch.tensor([0, 0, 1, 2]).numpy(), torch.tensor([0, 1, 1, 0]).numpy(), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_bf16_evaluation_records_its_precision(trained, synthetic_parquet, tmp_path):
    model_dir, _ = trained
    assert (
        run_evaluation(model_dir, synthetic_parquet, tmp_path / "eval", "--bf16", "--attn_implementation", "eager") == 0
    )
    results = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert results["precision"] == "bf16 autocast" and results["num_samples"] == 24


def test_attention_maps_show_single_latent_head_pairs_sharpest_first():
    attention = torch.full((3, 4, 4), 0.25)  # (heads, latents, tokens), uniform: maximal entropy
    attention[1, 3] = torch.tensor([0.0, 0.0, 1.0, 0.0])  # latent 3, head 1 reads one token
    attention[2, 0] = torch.tensor([0.5, 0.5, 0.0, 0.0])  # latent 0, head 2 reads two
    (first_title, first_map), (second_title, _) = sharpest_attention_maps(attention, 2)
    assert (first_title, second_title) == ("latent 3, head 1", "latent 0, head 2")
    assert first_map.tolist() == [0.0, 0.0, 1.0, 0.0]
    single_head = sharpest_attention_maps(attention[1:2], 1)
    assert single_head[0][0] == "latent 3"  # one head: no head in the title


def test_a_missing_or_empty_model_folder_is_named_not_sent_to_the_hub(synthetic_parquet, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "empty").mkdir()
    cases = {
        "outputs/misspelt": "model folder outputs/misspelt does not exist",
        "./misspelt": "model folder ./misspelt does not exist",
        "outputs/empty": "outputs/empty is not a model folder: it has no config.json",
    }
    for model_dir, message in cases.items():
        assert run_evaluation(model_dir, str(synthetic_parquet), str(tmp_path / "eval")) == 2
        error = capsys.readouterr().err
        assert message in error and "internet" not in error


@pytest.mark.parametrize("flag", ["--batch_size", "--max_samples"])
def test_numeric_flags_are_checked_when_parsed(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(["--model_dir", "x", flag, "0"])
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be a positive integer, got 0" in capsys.readouterr().err


def test_a_corrupt_run_record_is_named(tmp_path):
    from modeling_perceiver_study.evaluation import training_split_settings

    (tmp_path / "run_args.json").write_text("{ cut off")
    with pytest.raises(ValueError, match=r"run_args.json is not valid JSON"):
        training_split_settings(tmp_path)
    (tmp_path / "run_args.json").write_text("[]")
    with pytest.raises(ValueError, match=r"run_args.json is not a training run's record"):
        training_split_settings(tmp_path)


def test_a_truncated_weights_file_is_named(trained, synthetic_parquet, tmp_path, capsys):
    model_dir, _ = trained
    damaged = tmp_path / "damaged"
    shutil.copytree(model_dir, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    assert run_evaluation(str(damaged), str(synthetic_parquet), str(tmp_path / "eval")) == 2
    assert f"weights file {weights} does not load" in capsys.readouterr().err


def test_a_carved_test_split_is_disjoint_from_validation_the_same_for_every_seed_and_scored_once(
    synthetic_parquet, tmp_path
):
    from modeling_perceiver_study.data import open_image_dataset, split_held_out

    opened = open_image_dataset(str(synthetic_parquet))
    rows = {}
    for seed in (3, 4):
        train, validation, test = split_held_out(opened.splits, opened.label_column, 0.25, seed, test_split=0.25)
        rows[seed] = [set(split["source_row"]) for split in (train, validation, test)]
        train_rows, validation_rows, test_rows = rows[seed]
        assert not (train_rows & validation_rows or train_rows & test_rows or validation_rows & test_rows)
        assert len(train_rows | validation_rows | test_rows) == len(opened.splits["train"])
    assert rows[3][2] == rows[4][2] and rows[3][1] != rows[4][1]  # one test carve; validation follows --seed

    metrics = train_tiny(synthetic_parquet, tmp_path / "run", "--test_split", "0.25")
    assert metrics["test"]["num_samples"] == len(rows[3][2])
    assert metrics["validation"]["num_samples"] == len(rows[3][1])
    evaluated = evaluate_model_folder(tmp_path / "run", str(synthetic_parquet), "test", tmp_path / "eval")
    assert evaluated["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert "disjoint from validation" in evaluated["dataset"]

    with pytest.raises(SetupError, match="test_split must be a fraction in \\(0, 1\\), got 1.5"):
        train_tiny(synthetic_parquet, tmp_path / "bad", "--test_split", "1.5")


def test_a_test_split_is_not_invented_for_a_run_that_carved_none(trained, synthetic_parquet, tmp_path):
    model_dir, _ = trained
    with pytest.raises(DataError, match="has no test split, and the run that trained this model carved none"):
        evaluate_model_folder(model_dir, str(synthetic_parquet), "test", tmp_path / "eval")
