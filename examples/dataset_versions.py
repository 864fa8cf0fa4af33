"""Versioned datasets: two versions of a dataset, runs that use each, and models whose
versions carry aliases. `latest` and `vN` are set by the server (v1, v2, … in order), so the
script names versions by what log_artifact returned and can run again in the same project."""

import csv
import os
import random
import tempfile

import wanllmdb as wandb

PROJECT = os.environ.get("EXAMPLE_PROJECT", "sentiment")
work = tempfile.mkdtemp()


def write_reviews(name: str, rows: int) -> str:
    path = os.path.join(work, name)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(rows):
            w.writerow([f"review {i}", random.choice(["pos", "neg"])])
    return path


# 1. Two versions of the dataset.
wandb.init(project=PROJECT, name="ingest")
dataset_v1 = wandb.Artifact("sentiment-dataset", type="dataset")
dataset_v1.add_file(write_reviews("reviews_10k.csv", 100), name="reviews.csv")
wandb.log_artifact(dataset_v1, aliases=["small"])
dataset_v2 = wandb.Artifact("sentiment-dataset", type="dataset")
dataset_v2.add_file(write_reviews("reviews_50k.csv", 500), name="reviews.csv")
wandb.log_artifact(dataset_v2, aliases=["large"])
print(f"dataset versions {dataset_v1.version} and {dataset_v2.version}")
wandb.finish()

# 2. Train on each version; the runs are recorded as users of what they read.
for version in (dataset_v1.version, dataset_v2.version):
    wandb.init(project=PROJECT, name=f"train-on-{version}")
    dataset = wandb.use_artifact(f"sentiment-dataset:{version}")
    folder = dataset.download(root=os.path.join(work, version))
    with open(os.path.join(folder, "reviews.csv")) as f:
        rows = sum(1 for _ in f) - 1
    wandb.log({"accuracy": 0.8 + rows / 10000, "rows": rows})
    model = wandb.Artifact("sentiment-model", type="model", metadata={"dataset": version})
    path = os.path.join(work, f"model-{version}.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(256))
    model.add_file(path, name="model.bin")
    wandb.log_artifact(model, aliases=["production"] if version == dataset_v2.version else [])
    wandb.finish()

print(wandb.list_aliases("sentiment-model"))
