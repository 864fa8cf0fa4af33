"""Artifacts: versions, aliases, files, downloads and lineage through the SDK."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import wanllmdb as wandb


def test_artifacts_version_alias_download_and_lineage(env, api, tmp_path):
    (tmp_path / "model.pth").write_bytes(b"weights-v1")
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    producer = wandb.init(project="sdk-art", console="off", system_metrics=False)
    art = wandb.Artifact(
        "sentiment-classifier",
        type="model",
        description="BERT",
        metadata={"accuracy": 0.92},
        tags=["bert", "nlp"],
    )
    art.add_file(str(tmp_path / "model.pth"))
    art.add_dir(str(tmp_path / "tokenizer"), name="tokenizer")
    art.add_reference("s3://my-bucket/large-dataset.tar.gz", name="dataset.tar.gz")
    wandb.log_artifact(art, aliases=["v1", "staging"])
    assert art.version == "v1" and isinstance(art.version.id, int)
    assert {f["path"] for f in art.files()} == {
        "model.pth",
        "tokenizer/vocab.txt",
        "dataset.tar.gz",
    }
    wandb.finish()

    (tmp_path / "model.pth").write_bytes(b"weights-v2")
    v2 = wandb.Artifact("sentiment-classifier", type="model")
    v2.add_file(str(tmp_path / "model.pth"))
    # `latest` and `vN` are fine when they name the version created; the server says which
    # version this upload becomes when they do not.
    with pytest.raises(wandb.UsageError, match="becomes v2"):
        wandb.log_artifact(v2, aliases=["latest", "v7"])
    wandb.log_artifact(v2, aliases=["latest", "v2"])
    assert v2.version == "v2"
    wandb.create_alias(
        artifact="sentiment-classifier", alias="latest", version="v2", project="sdk-art"
    )
    with pytest.raises(wandb.UsageError, match="moves by itself"):
        wandb.update_alias(
            artifact="sentiment-classifier", alias="v1", version="v2", project="sdk-art"
        )
    wandb.create_alias(
        artifact="sentiment-classifier", alias="production", version="v1", project="sdk-art"
    )
    wandb.update_alias(
        artifact="sentiment-classifier", alias="production", version="v2", project="sdk-art"
    )
    aliases = {a["alias"]: a["version"] for a in wandb.list_aliases("sdk-art/sentiment-classifier")}
    assert (
        aliases["production"] == "v2" and aliases["latest"] == "v2" and aliases["staging"] == "v1"
    )
    # finalize_version of a committed version is a no-op returning it, by name or by id.
    assert wandb.finalize_version("sdk-art/sentiment-classifier", "v1")["version"] == "v1"
    assert wandb.finalize_version("sdk-art/sentiment-classifier", "latest")["version"] == "v2"
    assert wandb.finalize_version("sdk-art/sentiment-classifier", art.version)["version"] == "v1"
    assert wandb.finalize_version(v2, str(v2.version.id))["version"] == "v2"

    consumer = wandb.init(project="sdk-art", console="off", system_metrics=False)
    used = wandb.use_artifact("sentiment-classifier:production")
    assert used.version == "v2"
    path = used.get_path("model.pth").download(root=str(tmp_path / "dl"))
    assert Path(path).read_bytes() == b"weights-v2"
    root = wandb.use_artifact("sentiment-classifier:v1").download(root=str(tmp_path / "all"))
    assert (tmp_path / "all" / "tokenizer" / "vocab.txt").read_text() == "a\nb\n"
    assert root.endswith("all")
    wandb.finish()
    lineage = api.get("/projects/sdk-art/artifacts/sentiment-classifier/versions/v1/lineage")
    assert lineage["produced_by"]["id"] == producer.id
    assert consumer.id in {r["id"] for r in lineage["used_by"]}
    got = api.get("/projects/sdk-art/artifacts/sentiment-classifier")
    assert set(got["tags"]) == {"bert", "nlp"}
    assert hashlib.sha256(b"weights-v2").hexdigest() in {
        f.get("sha256")
        for f in api.get("/projects/sdk-art/artifacts/sentiment-classifier/versions/v2/files")
    }


def test_bad_artifact_input_names_the_argument(env, tmp_path):
    with pytest.raises(wandb.UsageError, match="name"):
        wandb.Artifact("bad name!", type="model")
    art = wandb.Artifact("ok", type="dataset")
    with pytest.raises(wandb.UsageError, match="local_path"):
        art.add_file(str(tmp_path / "missing.csv"))
    with pytest.raises(wandb.UsageError, match="uri"):
        art.add_reference("http://169.254.169.254/latest")
    wandb.init(project="sdk-art-bad", console="off", system_metrics=False)
    with pytest.raises(wandb.UsageError, match="holds no files"):
        wandb.log_artifact(art)
    with pytest.raises(wandb.UsageError, match="no such file"):
        wandb.log_artifact(str(tmp_path / "nothing-here"))
