"""A script meant for `wanllmdb run`: the wrapper creates the run, passes --config values
through WANLLMDB_RUN_CONFIG, captures stdout and system metrics; the SDK attaches to it.

    wanllmdb run --project demo --config lr=0.01 -- python wrapped.py
"""

import wanllmdb as wandb

run = wandb.init(config={"lr": 0.1, "epochs": 5})  # --config values win over these defaults
print(f"run {run.id}, lr {wandb.config.lr}")
for epoch in range(wandb.config.epochs):
    wandb.log({"loss": wandb.config.lr / (epoch + 1)})
wandb.finish()
