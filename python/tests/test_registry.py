"""The model registry through the SDK, as the product description writes it."""

from __future__ import annotations

import pytest

import wanllmdb as wandb


def test_register_version_transition_approve_and_query(env, api, server, tmp_path):
    (tmp_path / "model.pth").write_bytes(b"m")
    run = wandb.init(project="sentiment-analysis", console="off", system_metrics=False)
    wandb.log({"accuracy": 0.92})
    artifact = wandb.Artifact("model", type="model")
    artifact.add_file(str(tmp_path / "model.pth"))
    wandb.log_artifact(artifact)
    model = wandb.register_model(name="sentiment-classifier", description="BERT for reviews")
    assert model["name"] == "sentiment-classifier" and model["project"] == "sentiment-analysis"
    version = wandb.create_model_version(
        model_name="sentiment-classifier",
        run_id=run.id,
        artifact_version_id=artifact.version.id,
        description="100k reviews",
        metrics={"accuracy": 0.92, "f1": 0.91},
    )
    assert version.version == "v1" and version.run == run.id
    wandb.finish()
    v2 = wandb.create_model_version(
        model="sentiment-classifier", artifact="sentiment-analysis/model:latest", stage="Staging"
    )
    assert v2.stage == "Staging"
    wandb.transition_stage(
        model="sentiment-classifier", version="v1", to_stage="Staging", comment="test"
    )
    staging = wandb.list_model_versions(model="sentiment-classifier", stage="Staging")
    assert {v.version for v in staging} == {"v1", "v2"}
    assert wandb.get_latest_version("sentiment-classifier").version == "v2"
    assert wandb.get_latest_version("sentiment-classifier", stage="Production") is None
    with pytest.raises(wandb.PermissionDenied, match="approved_by"):
        wandb.approve_version(
            model="sentiment-classifier", version="v1", approved_by="tech_lead_id"
        )
    with pytest.raises(wandb.UsageError, match="stage"):
        wandb.transition_stage("sentiment-classifier", "v1", to_stage="Prod")
