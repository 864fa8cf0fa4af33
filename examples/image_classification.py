"""Image classification, as in the product description: compare two models, tune one with a
sweep, keep the best run's model as an artifact, register it and stage it."""

import math
import os
import random
import tempfile

import wanllmdb as wandb

PROJECT = os.environ.get("EXAMPLE_PROJECT", "product-classification")


def fake_accuracy(model: str, lr: float, batch_size: int) -> float:
    base = {"resnet50": 0.85, "efficientnet_b0": 0.88}.get(model, 0.8)
    return base - abs(math.log10(lr) + 3) * 0.02 + batch_size / 6400 + random.random() * 0.005


# 1. Experiments with two architectures.
wandb.init(project=PROJECT)
wandb.finish()
for name, model, tags in (
    ("resnet50-baseline", "resnet50", ["resnet", "baseline"]),
    ("efficientnet-v1", "efficientnet_b0", ["efficientnet"]),
):
    wandb.init(name=name, tags=tags)
    wandb.config.update({"model": model, "lr": 0.001})
    for epoch in range(5):
        wandb.log({"val_accuracy": fake_accuracy(model, 0.001, 64) * (epoch + 5) / 9})
    wandb.finish()

# 2. A sweep over the learning rate and batch size, run in this process.
sweep_config = {
    "method": "bayes",
    "metric": {"name": "val_accuracy", "goal": "maximize"},
    "parameters": {
        "lr": {"min": 0.0001, "max": 0.01},
        "batch_size": {"values": [32, 64, 128]},
        "augmentation": {"values": ["light", "medium", "heavy"]},
    },
}
sweep_id = wandb.sweep(sweep_config, project=PROJECT)


def train() -> None:
    wandb.init()
    config = wandb.config
    wandb.log({"val_accuracy": fake_accuracy("efficientnet_b0", config.lr, config.batch_size)})


wandb.agent(sweep_id, train, count=int(os.environ.get("EXAMPLE_TRIALS", "4")))

# 3. The best run's model becomes an artifact.
best_run = wandb.get_best_run(metric="val_accuracy", order="max", project=PROJECT)
print(f"best run {best_run.id}: val_accuracy {best_run.metrics['val_accuracy']:.4f}")
wandb.init(name="package-best", project=PROJECT)
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "best_model.pth")
    with open(path, "wb") as f:
        f.write(os.urandom(1024))
    artifact = wandb.Artifact("best-model", type="model", metadata={"run": best_run.id})
    artifact.add_file(path)
    wandb.log_artifact(artifact, aliases=["latest", "production"])
wandb.finish()

# 4. Register it (once) and put a new version in Staging.
try:
    wandb.register_model(
        name="product-classifier", description="product image classifier", project=PROJECT
    )
except wandb.UsageError as e:  # registered by an earlier run of this script
    print(f"model: {e}")
version = wandb.create_model_version(
    model="product-classifier", artifact="best-model:latest", stage="Staging"
)
print(f"registered product-classifier {version.version} in {version.stage}")
