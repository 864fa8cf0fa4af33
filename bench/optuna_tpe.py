"""Optuna's default TPESampler on the benchmark functions of `wanllmdb-tpe-bench`.

Reads one JSON request on stdin: {"seeds": N, "trials": T, "probes": {function: [[x, ...], ...]}}
and prints one JSON object: {"optuna_version", "probes": {function: [value, ...]}, "best":
{function: [best value per seed]}}, or "error" instead of "best" when Optuna cannot be imported.
The probes let the Rust side check that both languages evaluate identical functions.
"""

import json
import math
import sys


def lr_batch_dropout(x):
    lr, batch, dropout = x
    lr_opt = -3.0 + 0.35 * math.log2(batch / 64.0)
    d = math.log10(lr) - lr_opt
    return (
        0.2
        + 0.5 * d * d
        + 0.25 * max(d, 0.0) ** 3
        + 0.015 * (math.log2(batch) - 7.0) ** 2
        + 0.8 * (dropout - 0.15) ** 2
    )


def branin(x):
    x1, x2 = x
    b = 5.1 / (4.0 * math.pi**2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * math.cos(x1) + 10.0


OPT_LR = [-1.0, -1.7, -3.3, -2.8]
OPT_BASE = [0.32, 0.27, 0.22, 0.25]
OPT_SENS = [0.8, 0.6, 0.4, 0.5]


def mixed_optimizer(x):
    opt, lr, layers, units = x
    o = int(opt)
    d = math.log10(lr) - OPT_LR[o]
    return (
        OPT_BASE[o]
        + OPT_SENS[o] * d * d
        + 0.03 * (layers - 4.0) ** 2
        + 0.02 * (math.log2(units) - 8.0) ** 2
    )


H_ALPHA = [1.0, 1.2, 3.0, 3.2]
H_A = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
]
H_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def hartmann6(x):
    total = 0.0
    for i in range(4):
        inner = sum(H_A[i][j] * (x[j] - H_P[i][j]) ** 2 for j in range(6))
        total -= H_ALPHA[i] * math.exp(-inner)
    return total


def styblinski_tang5(x):
    return 0.5 * sum(v**4 - 16.0 * v * v + 5.0 * v for v in x)


FUNCTIONS = {
    "lr_batch_dropout": lr_batch_dropout,
    "branin": branin,
    "mixed_optimizer": mixed_optimizer,
    "hartmann6": hartmann6,
    "styblinski_tang5": styblinski_tang5,
}


def suggest(trial, name):
    """The same search spaces as the Rust side, in the same parameter order."""
    if name == "lr_batch_dropout":
        return [
            trial.suggest_float("lr", 1e-5, 1e-1, log=True),
            trial.suggest_int("batch", 8, 512, log=True),
            trial.suggest_float("dropout", 0.0, 0.5, step=0.05),
        ]
    if name == "branin":
        return [trial.suggest_float("x1", -5.0, 10.0), trial.suggest_float("x2", 0.0, 15.0)]
    if name == "mixed_optimizer":
        return [
            trial.suggest_categorical("optimizer", [0, 1, 2, 3]),
            trial.suggest_float("lr", 1e-5, 1.0, log=True),
            trial.suggest_int("layers", 1, 8),
            trial.suggest_int("units", 32, 512, step=32),
        ]
    if name == "hartmann6":
        return [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]
    if name == "styblinski_tang5":
        return [trial.suggest_float(f"x{i}", -5.0, 5.0) for i in range(5)]
    raise ValueError(name)


def run_optuna(optuna, name, seeds, trials):
    best = []
    for seed in range(seeds):
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        study.optimize(lambda t: FUNCTIONS[name](suggest(t, name)), n_trials=trials)
        best.append(study.best_value)
    return best


def main():
    request = json.load(sys.stdin)
    out = {
        "probes": {
            name: [FUNCTIONS[name](x) for x in points]
            for name, points in request.get("probes", {}).items()
        }
    }
    try:
        import optuna
    except ImportError as e:
        out["error"] = f"optuna is not importable by {sys.executable}: {e}"
        print(json.dumps(out))
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out["optuna_version"] = optuna.__version__
    out["best"] = {
        name: run_optuna(optuna, name, request["seeds"], request["trials"]) for name in FUNCTIONS
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
