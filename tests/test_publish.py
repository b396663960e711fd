"""Publishing: the staged Hub repository holds exactly the model's files, its card is valid and truthful, it loads from
an offline Hub cache without this package, and the upload is one commit that fails cleanly."""

import json
import shutil
import tempfile

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, ModelCard

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.publish import PublishError, push_main, render_model_card, stage_repository, upload
from tests.conftest import SYNTHETIC_LABELS
from tests.helpers import (
    LOAD_AND_PREDICT,
    check_loaded,
    lay_into_hub_cache,
    offline_env,
    run_without_package,
    train_tiny,
)

REPO_FILES = {
    "model.safetensors",
    "config.json",
    "preprocessor_config.json",
    "configuration_perceiver_study.py",
    "modeling_perceiver_study.py",
    "image_processing_perceiver_study.py",
    "README.md",
    "training_curves.png",
    "metrics.json",
}


DATASET = "org/synthetic-colours"  # the Hub id the card names for the locally generated training set


@pytest.fixture(scope="module")
def trained_folder(synthetic_parquet, tmp_path_factory):
    output = tmp_path_factory.mktemp("trained") / "run"
    train_tiny(synthetic_parquet, output)
    return output


class RecordingApi:
    """Stands in for `HfApi` at the network boundary and records every call."""

    def __init__(self, existing=(".gitattributes",), fail_commit=False):
        self.calls, self.existing, self.fail_commit = [], list(existing), fail_commit

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def list_repo_files(self, repo_id, **kwargs):
        return self.existing

    def create_commit(self, repo_id, operations, commit_message, revision=None, repo_type="model"):
        self.calls.append(("create_commit", repo_id, operations, commit_message, revision))
        self.repo_types = [*getattr(self, "repo_types", []), repo_type]
        if self.fail_commit:
            raise ConnectionError("connection reset while uploading")
        return "https://huggingface.co/org/name/commit/abc"


def test_dry_run_stages_exactly_the_repository_files(trained_folder, tmp_path, capsys):
    arguments = ["--model_dir", str(trained_folder), "--repo_id", "org/name", "--dataset_id", DATASET, "--dry_run"]
    assert push_main([*arguments, "--staging_dir", str(tmp_path / "stage")]) == 0
    assert {path.name for path in (tmp_path / "stage").iterdir()} == REPO_FILES
    output = capsys.readouterr().out
    assert "dry run: nothing uploaded" in output
    assert all(name in output for name in REPO_FILES)
    size = (tmp_path / "stage" / "model.safetensors").stat().st_size
    assert f"{size:,d}" in output
    assert any(path.name.startswith("checkpoint-") for path in trained_folder.iterdir())  # present, not staged


def test_folder_missing_a_required_file_is_refused_by_name(trained_folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained_folder, copy)
    (copy / "training_curves.png").unlink()
    with pytest.raises(PublishError, match="lacks training_curves.png"):
        stage_repository(copy, tmp_path / "stage", "org/name", DATASET)


def test_model_card_metadata_and_body_come_from_the_run(trained_folder, tmp_path):
    stage_repository(trained_folder, tmp_path / "stage", "org/perceiver-tiny", DATASET)
    card = ModelCard.load(tmp_path / "stage" / "README.md")
    metrics = json.loads((trained_folder / "metrics.json").read_text())
    data = card.data
    assert data.pipeline_tag == "image-classification" and data.library_name == "transformers"
    assert data.license == "apache-2.0" and "custom_code" in data.tags and data.metrics == ["accuracy"]
    assert data.eval_results[0].metric_type == "accuracy"
    assert data.eval_results[0].metric_value == round(metrics["validation"]["accuracy"], 4)
    assert data.eval_results[0].dataset_split == "validation (25 % of train, seeded)"
    assert data.datasets == [DATASET] and data.eval_results[0].dataset_type == DATASET
    assert "trust_remote_code=True" in card.text and "org/perceiver-tiny" in card.text
    assert f"{100 * metrics['validation']['accuracy']:.2f} %" in card.text
    assert "![Training curves](training_curves.png)" in card.text
    assert ", ".join(SYNTHETIC_LABELS) in card.text
    assert "| Latents | 8 x 32 |" in card.text
    assert "$" not in card.text.replace("$$", "")  # every template field was filled


def test_card_describes_a_convolutional_stem_instead_of_claiming_no_convolution(trained_folder, tmp_path):
    assert "no convolution" in stage_card(trained_folder, tmp_path / "pixels").text
    copy = tmp_path / "copy"
    shutil.copytree(trained_folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(input_stem="conv", conv_stem_channels=8, conv_stem_layers=3)
    (copy / "config.json").write_text(json.dumps(config))
    text = render_model_card(copy, "org/name", DATASET)  # the weights no longer fit this config: card only
    assert "| Token features | convolutional stem (Perceiver IO style), 8 channels, 3 convolutions |" in text
    assert "no convolution" not in text and "Without convolutions" not in text
    assert "not evidence for the paper's convolution-free design" in text


def test_card_names_the_token_and_position_features_the_model_has(trained_folder, tmp_path):
    assert "| Position features | Fourier, " in stage_card(trained_folder, tmp_path / "fourier").text
    copy = tmp_path / "copy"
    shutil.copytree(trained_folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(position_encoding_type="learned", learned_position_dim=18)
    (copy / "config.json").write_text(json.dumps(config))
    text = render_model_card(copy, "org/name", DATASET)
    assert "| Position features | learned, 18 per token |" in text and "Fourier" not in text
    config.update(position_encoding_type="fourier", num_fourier_bands=4, cross_attention_locality=True)
    (copy / "config.json").write_text(json.dumps(config))
    text = render_model_card(copy, "org/name", DATASET)
    assert (
        "| Position features | Fourier, 4 bands per axis; a learned locality prior on the cross-attention logits |"
        in text
    )
    assert "| Token features | the raw pixel values (no convolution) |" in text
    config.update(patch_whitening=True)
    (copy / "config.json").write_text(json.dumps(config))
    assert (
        "| Token features | the raw pixel values, whitened by one fixed linear map fitted on training patches (no "
        "convolution) |" in render_model_card(copy, "org/name", DATASET)
    )


def stage_card(model_dir, stage_dir):
    stage_repository(model_dir, stage_dir, "org/name", DATASET)
    return ModelCard.load(stage_dir / "README.md")


def test_local_dataset_needs_a_hub_id_for_the_card(trained_folder, tmp_path):
    with pytest.raises(PublishError, match="trained on a local dataset .*--dataset_id"):
        stage_repository(trained_folder, tmp_path / "stage", "org/name")


def test_card_omits_missing_metrics_instead_of_inventing_them(trained_folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained_folder, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    del metrics["validation"], metrics["best_validation_accuracy"]
    (copy / "metrics.json").write_text(json.dumps(metrics))
    stage_repository(copy, tmp_path / "stage", "org/name", DATASET)
    card = ModelCard.load(tmp_path / "stage" / "README.md")
    assert not card.data.eval_results
    assert "No validation accuracy was recorded" in card.text


def test_staged_repository_loads_from_an_offline_hub_cache_without_the_package(trained_folder, tmp_path):
    stage_repository(trained_folder, tmp_path / "stage", "org/perceiver-tiny", DATASET)
    lay_into_hub_cache(tmp_path / "stage", "org/perceiver-tiny", tmp_path / "hub")
    output = run_without_package(
        LOAD_AND_PREDICT.format(source="org/perceiver-tiny"),
        env_extra=offline_env(tmp_path / "hub", tmp_path / "modules"),
        cwd=tmp_path,
    )
    model = PerceiverStudyForImageClassification.from_pretrained(trained_folder).eval()
    check_loaded(json.loads(output.strip().splitlines()[-1]), model, labels=SYNTHETIC_LABELS)


def test_upload_is_one_commit_of_exactly_the_staged_files(trained_folder, tmp_path):
    staged = stage_repository(trained_folder, tmp_path / "stage", "org/name", DATASET)
    api = RecordingApi(existing=[".gitattributes", "README.md", "optimizer.pt"])
    upload(staged, "org/name", token="hf_test", private=True, revision="v1", api=api)
    commits = [call for call in api.calls if call[0] == "create_commit"]
    assert len(commits) == 1
    _, repo_id, operations, message, revision = commits[0]
    added = {op.path_in_repo for op in operations if isinstance(op, CommitOperationAdd)}
    deleted = {op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)}
    assert added == REPO_FILES and deleted == {"optimizer.pt"}
    assert (repo_id, revision) == ("org/name", "v1")
    assert api.calls[0] == ("create_repo", "org/name", {"private": True, "exist_ok": True, "repo_type": "model"})


def test_no_token_is_a_clear_error_before_anything_is_sent(trained_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setattr("huggingface_hub.HfApi", lambda *a, **k: pytest.fail("HfApi must not be created"))
    arguments = ["--model_dir", str(trained_folder), "--repo_id", "org/name", "--dataset_id", DATASET]
    assert push_main([*arguments, "--staging_dir", str(tmp_path / "stage")]) == 2
    assert "no Hugging Face token: set HF_TOKEN or run `hf auth login`" in capsys.readouterr().err


def test_failed_upload_says_nothing_was_published_and_what_to_do(trained_folder, tmp_path, monkeypatch, capsys):
    api = RecordingApi(fail_commit=True)
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_print_me")
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: api)
    arguments = ["--model_dir", str(trained_folder), "--repo_id", "org/name", "--dataset_id", DATASET]
    assert push_main([*arguments, "--staging_dir", str(tmp_path / "stage")]) == 2
    captured = capsys.readouterr()
    assert "nothing of this upload was published" in captured.err and "rerun the same command" in captured.err
    assert "hf_do_not_print_me" not in captured.out + captured.err
    assert [call[0] for call in api.calls].count("create_commit") == 1


def test_a_dry_run_refuses_what_the_real_push_would(trained_folder, tmp_path, capsys):
    """Everything short of uploading is checked: the repo id, and that the staged folder loads in a fresh process."""
    assert push_main(["--model_dir", str(trained_folder), "--repo_id", "not a repo id", "--dry_run"]) == 2
    assert "repo id 'not a repo id' must be 'owner/name'" in capsys.readouterr().err
    assert push_main(["--model_dir", str(trained_folder), "--repo_id", "org/bad..name", "--dry_run"]) == 2
    assert "is not valid on the Hub" in capsys.readouterr().err

    mismatched = tmp_path / "mismatched"
    shutil.copytree(trained_folder, mismatched)
    config = json.loads((mismatched / "config.json").read_text())
    (mismatched / "config.json").write_text(json.dumps({**config, "latent_dim": config["latent_dim"] * 2}))
    argv = ["--model_dir", str(mismatched), "--repo_id", "org/name", "--dataset_id", DATASET, "--dry_run"]
    assert push_main(argv) == 2
    assert "does not load through the Auto classes" in capsys.readouterr().err


def test_a_push_leaves_no_copy_of_the_weights_behind(trained_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    argv = ["--model_dir", str(trained_folder), "--repo_id", "org/name", "--dataset_id", DATASET, "--dry_run"]
    assert push_main(argv) == 0
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_space_is_created_as_a_gradio_space_and_committed_as_one(tmp_path):
    from modeling_perceiver_study.publish import stage_space

    staged = stage_space(tmp_path / "space", "org/model")
    api = RecordingApi()
    upload(staged, "org/demo", token="hf_test", api=api, repo_type="space")
    (create_call,) = [call for call in api.calls if call[0] == "create_repo"]
    assert create_call[2]["repo_type"] == "space" and create_call[2]["space_sdk"] == "gradio"
    (commit,) = [call for call in api.calls if call[0] == "create_commit"]
    assert api.repo_types == ["space"]
    assert {operation.path_in_repo for operation in commit[2]} == {item.path_in_repo for item in staged}
