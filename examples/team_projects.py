"""A shared project: several people's runs, the best one tagged, its model used downstream."""

import os
import random

import wanllmdb as wandb

PROJECT = os.environ.get("EXAMPLE_PROJECT", "dialogue-system")

try:
    wandb.create_project(
        name=PROJECT, visibility="private", description="the team's dialogue system"
    )
except wandb.Error as e:  # it exists already
    print(f"project: {e}")

for name in ("intent-classifier-v1", "ner-model-v1", "dialog-manager-v1"):
    wandb.init(project=PROJECT, name=name, config={"seed": random.randint(0, 1000)})
    for step in range(20):
        wandb.log({"accuracy": 0.6 + step * 0.01 + random.random() * 0.05})
    wandb.log_message(f"{name} trained", level="INFO")
    wandb.log_batch(
        [{"level": "INFO", "message": "Epoch 1 started"}, {"level": "INFO", "message": "Loss: 0.5"}]
    )
    wandb.finish()

runs = wandb.list_runs(PROJECT)
best_runs = sorted(runs, key=lambda r: r.metrics["accuracy"], reverse=True)
wandb.add_tag(best_runs[0], "production-candidate")
print(f"best: {best_runs[0].name} ({best_runs[0].metrics['accuracy']:.3f})")
finished = wandb.list_runs(
    PROJECT, filters={"summary.accuracy": {"$gte": 0.5}}, order="-summary.accuracy"
)
print(f"{len(finished)} runs above 0.5")
