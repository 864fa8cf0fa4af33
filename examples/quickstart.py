"""The smallest tracked training loop: config, metrics, a summary value, finish.

Run it with a server and a key in the environment:
    WANLLMDB_BASE_URL=http://127.0.0.1:8000 WANLLMDB_API_KEY=wlk_... python quickstart.py
"""

import math
import random

import wanllmdb as wandb

run = wandb.init(
    project="my-project",
    name="experiment-1",
    config={"learning_rate": 0.001, "batch_size": 64, "epochs": 10},
    tags=["baseline", "v1"],
)
config = wandb.config
for epoch in range(config.epochs):
    loss = math.exp(-epoch * config.learning_rate * 300) + random.random() * 0.01
    accuracy = 1 - loss / 2
    wandb.log({"loss": loss, "accuracy": accuracy, "train": {"epoch": epoch}})
print(f"run {run.id}: final loss {loss:.4f}")
run.summary["best_accuracy"] = accuracy
wandb.add_tag("production-ready")
wandb.finish()
