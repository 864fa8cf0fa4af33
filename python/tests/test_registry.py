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
    assert version.artifact == "sentiment-analysis/model:v1"
    wandb.finish()
    v2 = wandb.create_model_version(
        model="sentiment-classifier", artifact="sentiment-analysis/model:latest", stage="staging"
    )
    assert v2.stage == "Staging"
    wandb.transition_stage(
        model="sentiment-classifier", version="v1", to_stage="Staging", comment="test"
    )
    staging = wandb.list_model_versions(model="sentiment-classifier", stage="Staging")
    assert {v.version for v in staging} == {"v1", "v2"}
    assert wandb.get_latest_version("sentiment-classifier").version == "v2"
    assert wandb.get_latest_version("sentiment-classifier", stage="Staging").version == "v2"
    assert wandb.get_latest_version("sentiment-classifier", stage="Production") is None
    with pytest.raises(wandb.NotFound, match="no-such-model"):
        wandb.get_latest_version("no-such-model")
    with pytest.raises(wandb.PermissionDenied, match="approved_by"):
        wandb.approve_version(
            model="sentiment-classifier", version="v1", approved_by="tech_lead_id"
        )
    with pytest.raises(wandb.UsageError, match="stage"):
        wandb.transition_stage("sentiment-classifier", "v1", to_stage="Prod")


def test_a_version_from_an_artifact_version_id_asking_for_production(env, api, tmp_path):
    """What another process sends: only the artifact version's id, a run id and a stage."""
    (tmp_path / "m.bin").write_bytes(b"m")
    run = wandb.init(project="sdk-registry-ids", console="off", system_metrics=False)
    art = wandb.Artifact("ids-model", type="model")
    art.add_file(str(tmp_path / "m.bin"))
    wandb.log_artifact(art)
    wandb.finish()
    wandb.register_model("ids-model", project="sdk-registry-ids")
    # Production needs an approval first: the version is created in None, and the server's
    # warning says so.
    with pytest.warns(UserWarning, match="not Production"):
        v = wandb.create_model_version(
            model_name="ids-model",
            artifact_version_id=str(art.version.id),
            run_id=run.id,
            stage="Production",
        )
    assert (v.version, v.stage, v.run) == ("v1", "None", run.id)
    assert v.artifact == "sdk-registry-ids/ids-model:v1" and "warnings" not in v
    with pytest.raises(wandb.UsageError, match="artifact_version_id"):
        wandb.create_model_version(model_name="ids-model", artifact_version_id="ids-model:v1")
    # The caller created v1; with self-approval allowed, approved_by names the caller.
    api.put(
        "/projects/sdk-registry-ids/registry-policy",
        {"require_approval": True, "allow_self_approval": True},
    )
    approved = wandb.approve_version("ids-model", "v1", approved_by="admin", comment="ok")
    assert approved.approved_by == "admin"
    wandb.transition_stage("ids-model", "v1", to_stage="Production")
    assert wandb.get_latest_version("ids-model", stage="Production").version == "v1"
