"""An offline run: everything goes to the local spool (.wanllmdb/runs/<id>/); upload it later
with `wanllmdb sync`, from any machine that reaches the server."""

import wanllmdb as wandb

run = wandb.init(project="offline-demo", mode="offline", config={"lr": 0.01})
for step in range(100):
    wandb.log({"loss": 1 / (step + 1)})
wandb.log({"loss": float("nan")})  # NaN and infinities travel as the wire contract says
run.summary["note"] = 1
wandb.finish(quiet=True)
print(f"spooled in {run.dir}; upload with: wanllmdb sync {run.dir}")
