"""Seeds an MLflow tracking database through MLflow's own store (not its REST API) with one
finished run of KEYS metrics x POINTS steps: the same curves that mlflow-compare.mjs logs to
wanLLMDB. Prints the experiment and run ids as JSON.

    python mlflow_seed.py DB_PATH ARTIFACT_DIR KEYS POINTS

The store creates the experiment and the run, and logs each metric's last point with
`log_batch` (which keeps its latest-metric table). `log_batch` takes 1,000 metrics a call and
builds an ORM object per row, about 1,500 rows a second on this machine, so the other points go
in as bulk inserts through the store's own SQLAlchemy engine into MLflow's own `metrics` table
model: the same rows, hours faster.
"""

import json
import math
import sys
import time

from mlflow.entities import Metric, RunStatus
from mlflow.store.tracking.dbmodels.models import SqlMetric
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

CHUNK = 50_000


def value(step: int, key: int) -> float:
    return math.exp(-step / 200_000) + 0.01 * math.sin(step + key)


def main() -> None:
    db, artifacts, keys, points = (
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    store = SqlAlchemyStore(f"sqlite:///{db}", artifacts)
    experiment = store.create_experiment("curves")
    start_ms = 1_764_250_000_000
    run = store.create_run(experiment, "bench", start_ms, [], "big")
    run_id = run.info.run_id
    started = time.time()
    rows = []
    with store.engine.begin() as conn:
        for step in range(points - 1):
            ts = start_ms + step * 10
            for k in range(keys):
                rows.append(
                    {
                        "key": f"metric_{k:02d}",
                        "value": value(step, k),
                        "timestamp": ts,
                        "step": step,
                        "is_nan": False,
                        "run_uuid": run_id,
                    }
                )
            if len(rows) >= CHUNK:
                conn.execute(SqlMetric.__table__.insert(), rows)
                rows = []
        if rows:
            conn.execute(SqlMetric.__table__.insert(), rows)
    last = points - 1
    store.log_batch(
        run_id,
        [
            Metric(f"metric_{k:02d}", value(last, k), start_ms + last * 10, last)
            for k in range(keys)
        ],
        [],
        [],
    )
    store.update_run_info(run_id, RunStatus.FINISHED, start_ms + points * 10, "big")
    print(
        json.dumps(
            {
                "experiment_id": experiment,
                "run_id": run_id,
                "rows": keys * points,
                "seconds": round(time.time() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
