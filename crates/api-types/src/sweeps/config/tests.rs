//! Tests of the configuration format, its checks and the trial command.

use super::command::python_float;
use super::parse::{at, join_issues};
use super::*;
use serde_json::json;

fn parse(v: Value) -> SweepConfig {
    match parse_sweep_config(&v) {
        Ok(cfg) => cfg,
        Err(issues) => panic!("unexpected issues: {}", join_issues(&issues)),
    }
}

fn issues(v: Value) -> Vec<ConfigIssue> {
    match parse_sweep_config(&v) {
        Ok(cfg) => panic!("expected issues, got {cfg:?}"),
        Err(issues) => issues,
    }
}

/// Asserts an issue at `path` whose message contains `needle`.
fn assert_issue(issues: &[ConfigIssue], path: &str, needle: &str) {
    assert!(
        issues
            .iter()
            .any(|i| i.path == path && i.message.contains(needle)),
        "no issue at `{path}` containing `{needle}` in:\n{}",
        issues
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn dist(cfg: &SweepConfig, name: &str) -> Distribution {
    match &cfg.parameters[name] {
        Param::Dist(d) => *d,
        other => panic!("{name} is not a distribution: {other:?}"),
    }
}

/// W&B's nested-parameters example, as a grid.
fn grid_example() -> Value {
    json!({
        "program": "train.py",
        "method": "grid",
        "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {
            "epochs": {"value": 10},
            "batch_size": {"values": [16, 32, 64]},
            "layers": {"min": 1, "max": 3},
            "width": {"distribution": "q_uniform", "min": 32, "max": 128, "q": 32},
            "optimizer": {"parameters": {
                "name": {"values": ["adam", "sgd"]},
                "lr": {"values": [0.001, 0.01]},
                "momentum": {"value": 0.9},
            }},
        },
    })
}

#[test]
fn grid_example_with_nested_parameters() {
    let cfg = parse(grid_example());
    assert_eq!(cfg.method, SearchMethod::Grid);
    assert_eq!(cfg.program.as_deref(), Some("train.py"));
    assert_eq!(cfg.command, DEFAULT_COMMAND.map(String::from).to_vec());
    let metric = cfg.metric.clone().unwrap();
    assert_eq!(
        (metric.name.as_str(), metric.goal),
        ("val_loss", Goal::Minimize)
    );
    let names: Vec<String> = cfg.flat_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "batch_size",
            "epochs",
            "layers",
            "optimizer.lr",
            "optimizer.momentum",
            "optimizer.name",
            "width"
        ]
    );
    assert_eq!(
        dist(&cfg, "layers"),
        Distribution::IntUniform { min: 1, max: 3 }
    );
    let flat = cfg.flat_params();
    assert_eq!(*flat[4].1, Param::Fixed(json!(0.9)));
    // 3 batch sizes × 1 × 3 layers × 2 lr × 1 × 2 names × 3 widths (32, 64, 96).
    assert_eq!(cfg.grid_size(), Some(108));
    assert_eq!(cfg.tpe, TpeConfig::default());
    assert!(cfg.tpe.constant_liar);
}

#[test]
fn random_example_with_every_distribution() {
    let cfg = parse(json!({
        "method": "random",
        "command": ["${env}", "python3", "${program}", "${args}"],
        "program": "train.py",
        "parameters": {
            "c": {"distribution": "constant", "value": "x"},
            "cat": {"distribution": "categorical", "values": [1, "two", null]},
            "catp": {"distribution": "categorical_w_probabilities", "values": [1, 2], "probabilities": [0.25, 0.75]},
            "iu": {"distribution": "int_uniform", "min": -3, "max": 3},
            "u": {"distribution": "uniform", "min": 0, "max": 1},
            "qu": {"distribution": "q_uniform", "min": 0, "max": 100},
            "lu": {"distribution": "log_uniform", "min": -9.2, "max": -2.3},
            "luv": {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
            "ilu": {"distribution": "inv_log_uniform", "min": 0, "max": 3},
            "iluv": {"distribution": "inv_log_uniform_values", "min": 0.5, "max": 20},
            "qlu": {"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 2},
            "qluv": {"distribution": "q_log_uniform_values", "min": 1, "max": 1024, "q": 8},
            "n": {"distribution": "normal"},
            "qn": {"distribution": "q_normal", "mu": 10, "sigma": 2, "q": 0.5},
            "ln": {"distribution": "log_normal", "mu": -1},
            "qln": {"distribution": "q_log_normal", "sigma": 0.5},
            "be": {"distribution": "beta", "a": 2},
            "qbe": {"distribution": "q_beta", "a": 2, "b": 5, "q": 0.1},
        },
    }));
    use Distribution as D;
    assert_eq!(cfg.method, SearchMethod::Random);
    assert_eq!(cfg.command[1], "python3");
    assert_eq!(cfg.parameters["c"], Param::Fixed(json!("x")));
    assert_eq!(
        cfg.parameters["cat"],
        Param::Choice {
            values: vec![json!(1), json!("two"), Value::Null],
            probabilities: None
        }
    );
    assert_eq!(
        cfg.parameters["catp"],
        Param::Choice {
            values: vec![json!(1), json!(2)],
            probabilities: Some(vec![0.25, 0.75])
        }
    );
    assert_eq!(dist(&cfg, "iu"), D::IntUniform { min: -3, max: 3 });
    // An explicit uniform keeps integer bounds as reals.
    assert_eq!(dist(&cfg, "u"), D::Uniform { min: 0.0, max: 1.0 });
    assert_eq!(
        dist(&cfg, "qu"),
        D::QUniform {
            min: 0.0,
            max: 100.0,
            q: 1.0
        }
    );
    assert_eq!(
        dist(&cfg, "lu"),
        D::LogUniform {
            min: -9.2,
            max: -2.3
        }
    );
    assert_eq!(
        dist(&cfg, "luv"),
        D::LogUniformValues {
            min: 1e-4,
            max: 0.1
        }
    );
    assert_eq!(dist(&cfg, "ilu"), D::InvLogUniform { min: 0.0, max: 3.0 });
    assert_eq!(
        dist(&cfg, "iluv"),
        D::InvLogUniformValues {
            min: 0.5,
            max: 20.0
        }
    );
    assert_eq!(
        dist(&cfg, "qlu"),
        D::QLogUniform {
            min: 0.0,
            max: 5.0,
            q: 2.0
        }
    );
    assert_eq!(
        dist(&cfg, "qluv"),
        D::QLogUniformValues {
            min: 1.0,
            max: 1024.0,
            q: 8.0
        }
    );
    assert_eq!(
        dist(&cfg, "n"),
        D::Normal {
            mu: 0.0,
            sigma: 1.0
        }
    );
    assert_eq!(
        dist(&cfg, "qn"),
        D::QNormal {
            mu: 10.0,
            sigma: 2.0,
            q: 0.5
        }
    );
    assert_eq!(
        dist(&cfg, "ln"),
        D::LogNormal {
            mu: -1.0,
            sigma: 1.0
        }
    );
    assert_eq!(
        dist(&cfg, "qln"),
        D::QLogNormal {
            mu: 0.0,
            sigma: 0.5,
            q: 1.0
        }
    );
    assert_eq!(dist(&cfg, "be"), D::Beta { a: 2.0, b: 1.0 });
    assert_eq!(
        dist(&cfg, "qbe"),
        D::QBeta {
            a: 2.0,
            b: 5.0,
            q: 0.1
        }
    );
    assert_eq!(dist(&cfg, "qbe").name(), "q_beta");
    // Continuous leaves: no grid.
    assert_eq!(cfg.grid_size(), None);
}

#[test]
fn bayes_example_with_hyperband_and_metric() {
    let cfg = parse(json!({
        "name": "bayes-hb",
        "description": "lr and dropout",
        "project": "mnist",
        "entity": "someone",
        "controller": {"type": "local"},
        "program": "train.py",
        "method": "bayes",
        "metric": {"name": "val/acc", "goal": "maximize", "target": 0.99, "impute": "worst"},
        "parameters": {
            "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 0.1},
            "dropout": {"min": 0.0, "max": 0.5},
        },
        "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 2, "strict": true},
        "run_cap": 50,
        "optuna_config": {"n_startup_trials": 5, "multivariate": true, "constant_liar": false, "seed": 7},
    }));
    assert_eq!(cfg.method, SearchMethod::Bayes);
    assert_eq!(cfg.name.as_deref(), Some("bayes-hb"));
    assert_eq!(cfg.description.as_deref(), Some("lr and dropout"));
    assert_eq!(cfg.project.as_deref(), Some("mnist"));
    assert_eq!(
        cfg.metric,
        Some(MetricGoal {
            name: "val/acc".into(),
            goal: Goal::Maximize,
            target: Some(0.99)
        })
    );
    assert_eq!(
        cfg.early_terminate,
        Some(Hyperband {
            min_iter: Some(3),
            max_iter: None,
            s: None,
            eta: 2.0,
            strict: true
        })
    );
    assert_eq!(cfg.run_cap, Some(50));
    assert_eq!(
        cfg.tpe,
        TpeConfig {
            sampler: Sampler::Tpe,
            n_startup_trials: 5,
            n_ei_candidates: 24,
            multivariate: true,
            constant_liar: false,
            seed: Some(7)
        }
    );
    assert_eq!(
        dist(&cfg, "dropout"),
        Distribution::Uniform { min: 0.0, max: 0.5 }
    );

    let hb = parse(json!({
        "method": "random",
        "metric": {"name": "loss"},
        "parameters": {"x": {"values": [1]}},
        "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2},
    }));
    assert_eq!(
        hb.early_terminate,
        Some(Hyperband {
            min_iter: None,
            max_iter: Some(27),
            s: Some(2),
            eta: 3.0,
            strict: false
        })
    );
    assert_eq!(hb.metric.unwrap().goal, Goal::Minimize);
}

#[test]
fn distributions_are_inferred_as_wandb_does() {
    let cfg = parse(json!({
        "method": "random",
        "parameters": {
            "values": {"values": ["a", "b"]},
            "weighted": {"values": ["a", "b"], "probabilities": [0.1, 0.9]},
            "constant": {"value": [1, 2]},
            "null_constant": {"value": null},
            "ints": {"min": 1, "max": 5},
            "mixed": {"min": 1, "max": 5.0},
            "floats": {"min": 0.5, "max": 1.5},
        },
    }));
    assert!(matches!(
        &cfg.parameters["values"],
        Param::Choice {
            probabilities: None,
            ..
        }
    ));
    assert!(
        matches!(&cfg.parameters["weighted"], Param::Choice { probabilities: Some(p), .. } if p == &[0.1, 0.9])
    );
    assert_eq!(cfg.parameters["constant"], Param::Fixed(json!([1, 2])));
    assert_eq!(cfg.parameters["null_constant"], Param::Fixed(Value::Null));
    assert_eq!(
        dist(&cfg, "ints"),
        Distribution::IntUniform { min: 1, max: 5 }
    );
    assert_eq!(
        dist(&cfg, "mixed"),
        Distribution::Uniform { min: 1.0, max: 5.0 }
    );
    assert_eq!(
        dist(&cfg, "floats"),
        Distribution::Uniform { min: 0.5, max: 1.5 }
    );

    // W&B cannot infer a distribution from mu/sigma or from q, nor from half a range.
    let found = issues(json!({
        "method": "random",
        "parameters": {
            "n": {"mu": 0, "sigma": 1},
            "q": {"min": 0, "max": 10, "q": 2},
            "half": {"min": 0},
            "nothing": {},
        },
    }));
    assert_issue(&found, "parameters.n", "name the `distribution`");
    assert_issue(
        &found,
        "parameters.q.q",
        "does not apply to int_uniform (inferred",
    );
    assert_issue(&found, "parameters.half.max", "missing");
    assert_issue(&found, "parameters.nothing", "cannot tell the distribution");
    assert_eq!(found.len(), 4, "{found:?}");
}

#[test]
fn log_scale_bounds_are_explained() {
    let cfg = parse_sweep_config(&json!({
        "method": "bayes",
        "metric": {"name": "val_accuracy", "goal": "maximize"},
        "parameters": {
            "learning_rate": {"distribution": "log_uniform", "min": 0.0001, "max": 0.1},
            "wd": {"distribution": "log_uniform", "min": -9.21, "max": -2.3},
            "lr2": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
            "dropout": {"distribution": "uniform", "min": 0.1, "max": 0.5},
        },
    }))
    .unwrap();
    let w = config_warnings(&cfg);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        w[0],
        "parameters.learning_rate: log_uniform takes exponents, so min 0.0001 and max 0.1 sample values from 1.0001 to 1.1052; to sample values from 0.0001 to 0.1, use distribution: log_uniform_values"
    );
    assert_eq!(
        w[1],
        "parameters.wd: log_uniform takes exponents, so min -9.21 and max -2.3 sample values from 0.00010003 to 0.10026"
    );
    let inv = parse_sweep_config(&json!({
        "method": "random",
        "parameters": {"x": {"distribution": "inv_log_uniform", "min": 0.5, "max": 3}},
    }))
    .unwrap();
    assert_eq!(
        config_warnings(&inv),
        [
            "parameters.x: inv_log_uniform takes exponents, so min 0.5 and max 3 sample values from 0.049787 to 0.60653"
        ]
    );
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let found = issues(json!({
        "method": "grid",
        "metric": {"goal": "maximise"},
        "run_cap": 0,
        "paramters": {},
        "command": "python train.py",
        "early_terminate": {"type": "hyperband", "eta": 1, "max_iters": 9},
        "optuna_config": {"n_startup_trials": "10", "seed": -1, "sampler": "tpe"},
        "parameters": {
            "lr": {"distribution": "uniform", "min": 0.1, "max": 0.01},
            "wd": {"distribution": "log_uniform_values", "min": 0, "max": 1},
            "bs": {"values": []},
            "opt": {"values": ["a", "b"], "probabilities": [0.5, 0.6]},
            "qq": {"distribution": "q_uniform", "min": "1", "max": 10, "q": 0},
            "n": {"distribution": "normal", "sigma": -1},
            "mix": {"value": 1, "values": [1, 2]},
            "bad": {"distribution": "gaussian"},
            "x": {"values": [1], "colour": 1},
            "nest": {"value": 1, "parameters": {"y": {"value": 2}}},
            "plain": 0.1,
            "ints": {"distribution": "int_uniform", "min": 1.5, "max": 3},
        },
    }));
    let expected = [
        ("paramters", "did you mean `parameters`?"),
        ("metric.name", "missing"),
        ("metric.goal", "did you mean maximize?"),
        ("run_cap", "positive whole number"),
        ("command", "must be a list"),
        ("early_terminate", "needs `min_iter`"),
        ("early_terminate.eta", "must be greater than 1"),
        ("early_terminate.max_iters", "did you mean `max_iter`?"),
        (
            "optuna_config.n_startup_trials",
            "is a string; write the number without quotes",
        ),
        ("optuna_config.seed", "at least 0"),
        (
            "optuna_config.sampler",
            "unsupported sampler \"tpe\": use one of TPESampler, RandomSampler",
        ),
        ("parameters.lr.max", "must be greater than min"),
        ("parameters.lr", "grid search needs `values`"),
        ("parameters.wd.min", "must be greater than 0"),
        ("parameters.bs.values", "must not be empty"),
        ("parameters.opt.probabilities", "must add up to 1"),
        (
            "parameters.opt.probabilities",
            "grid search tries every value",
        ),
        ("parameters.qq.min", "is a string"),
        ("parameters.qq.q", "must be greater than 0"),
        ("parameters.n.sigma", "must be greater than 0"),
        ("parameters.mix", "either `value` or `values`"),
        (
            "parameters.bad.distribution",
            "unknown distribution `gaussian`",
        ),
        ("parameters.x.colour", "unknown key"),
        (
            "parameters.nest",
            "cannot be mixed with other keys (`value`)",
        ),
        ("parameters.plain", "write `value: 0.1`"),
        ("parameters.ints.min", "must be a whole number"),
    ];
    for (path, needle) in expected {
        assert_issue(&found, path, needle);
    }
    // The q_uniform spec is fine for a grid: no grid complaint about it.
    assert!(
        !found
            .iter()
            .any(|i| i.path == "parameters.qq" && i.message.contains("grid"))
    );
    let display: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(display.contains(&"parameters.lr.max: must be greater than min".to_string()));
}

#[test]
fn top_level_requirements() {
    let found = issues(json!({"program": 3, "metrics": [], "scheduler": {}}));
    assert_issue(&found, "method", "missing; use grid, random or bayes");
    assert_issue(&found, "parameters", "missing");
    assert_issue(&found, "program", "must be a string, not a number");
    assert_issue(&found, "metrics", "not supported");
    assert_issue(&found, "scheduler", "not supported");

    let found = issues(
        json!({"method": "bayes", "parameters": {"x": {"values": [1]}},
        "early_terminate": {"type": "asha", "min_iter": 1}}),
    );
    assert_issue(&found, "metric", "bayes search needs a metric");
    assert_issue(&found, "early_terminate", "add `metric`");
    assert_issue(&found, "early_terminate.type", "only hyperband");

    let found = issues(json!({"method": "Grid", "parameters": {}}));
    assert_issue(&found, "method", "did you mean grid?");
    assert_issue(&found, "parameters", "at least one parameter");

    let found = issues(
        json!({"method": "custom", "parameters": {"x": {"value": 1}},
        "metric": {"name": ""}, "run_cap": "5",
        "early_terminate": {"type": "hyperband", "max_iter": 9, "strict": "true"}}),
    );
    assert_issue(&found, "method", "custom is not supported");
    assert_issue(&found, "metric.name", "must not be empty");
    assert_issue(
        &found,
        "run_cap",
        "is a string; write the number without quotes",
    );
    assert_issue(&found, "early_terminate.s", "`max_iter` needs `s`");
    assert_issue(
        &found,
        "early_terminate.strict",
        "write true or false without quotes",
    );

    let found = issues(json!([1, 2]));
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].to_string(),
        "a sweep configuration must be a mapping, not a list"
    );
}

#[test]
fn grid_rejects_continuous_distributions_at_their_path() {
    for spec in [
        json!({"min": 0.0, "max": 1.0}),
        json!({"distribution": "normal"}),
        json!({"distribution": "log_uniform_values", "min": 0.001, "max": 1}),
    ] {
        let found = issues(json!({
            "method": "grid",
            "parameters": {"ok": {"values": [1, 2]}, "opt": {"parameters": {"lr": spec}}},
        }));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "parameters.opt.parameters.lr");
        assert!(
            found[0]
                .message
                .starts_with("grid search needs `values`, int_uniform")
        );
    }
    // The same parameters are fine for random search.
    parse(json!({"method": "random", "parameters": {"lr": {"min": 0.0, "max": 1.0}}}));
}

#[test]
fn grid_size_counts_nested_leaves_and_saturates() {
    let cfg = parse(json!({
        "method": "grid",
        "parameters": {
            "a": {"values": [1, 2, 3]},
            "b": {"parameters": {
                "c": {"min": -2, "max": 2},
                "d": {"parameters": {"e": {"values": [true, false]}, "f": {"value": 0}}},
            }},
            "g": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25},
        },
    }));
    // 3 × 5 × 2 × 1 × 4 (0, 0.25, 0.5, 0.75: max is exclusive, as numpy's arange).
    assert_eq!(cfg.grid_size(), Some(120));
    assert_eq!(cfg.parameters["b"].grid_count(), Some(10));

    let huge = parse(json!({
        "method": "grid",
        "parameters": {
            "a": {"min": i64::MIN, "max": i64::MAX},
            "b": {"min": 0, "max": 1_000_000_000},
        },
    }));
    assert_eq!(huge.grid_size(), Some(u64::MAX));
}

#[test]
fn nest_params_inverts_flat_params() {
    let cfg = parse(grid_example());
    // A trial's flat point, keyed by flat_params' names.
    let flat: Map<String, Value> = cfg
        .flat_params()
        .into_iter()
        .enumerate()
        .map(|(i, (name, _))| (name, json!(i)))
        .collect();
    let nested = cfg.nest_params(&flat);
    assert_eq!(
        Value::Object(nested.clone()),
        json!({
            "batch_size": 0, "epochs": 1, "layers": 2,
            "optimizer": {"lr": 3, "momentum": 4, "name": 5},
            "width": 6,
        })
    );
    // And flattening the nested object again gives the same points.
    fn flatten(prefix: &str, m: &Map<String, Value>, out: &mut Map<String, Value>) {
        for (k, v) in m {
            let path = at(prefix, k);
            match v {
                Value::Object(inner) => flatten(&path, inner, out),
                _ => {
                    out.insert(path, v.clone());
                }
            }
        }
    }
    let mut again = Map::new();
    flatten("", &nested, &mut again);
    assert_eq!(again, flat);
    // Keys that name no leaf (a stray key, a group) are ignored; a group without any
    // value is left out.
    let mut extra = flat.clone();
    extra.insert("nope".into(), json!(1));
    extra.insert("optimizer".into(), json!(2));
    assert_eq!(cfg.nest_params(&extra), nested);
    let only_top: Map<String, Value> = [("epochs".to_string(), json!(3))].into_iter().collect();
    assert_eq!(
        Value::Object(cfg.nest_params(&only_top)),
        json!({"epochs": 3})
    );
    // Values that are themselves objects stay intact at their leaf.
    let cfg = parse(json!({"method": "random",
        "parameters": {"a": {"parameters": {"b": {"value": {"k": 1}}}}}}));
    let with_object: Map<String, Value> =
        [("a.b".to_string(), json!({"k": 1}))].into_iter().collect();
    assert_eq!(
        Value::Object(cfg.nest_params(&with_object)),
        json!({"a": {"b": {"k": 1}}})
    );
}

/// Hydra-style names, as W&B sweep files write them for `${args_no_hyphens}`.
fn dotted_example() -> Value {
    json!({
        "program": "train.py",
        "method": "grid",
        "command": ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"],
        "parameters": {
            "model.lr": {"values": [0.01, 0.1]},
            "model.layers": {"value": 2},
            "optimizer": {"parameters": {"lr": {"value": 0.001}}},
        },
    })
}

#[test]
fn dotted_names_are_accepted_and_stay_flat_keys() {
    let cfg = parse(dotted_example());
    let names: Vec<String> = cfg.flat_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["model.layers", "model.lr", "optimizer.lr"]);
    assert_eq!(cfg.grid_size(), Some(2));
    let flat: Map<String, Value> = [
        ("model.lr".to_string(), json!(0.01)),
        ("model.layers".to_string(), json!(2)),
        ("optimizer.lr".to_string(), json!(0.001)),
    ]
    .into_iter()
    .collect();
    // The dotted name stays one top-level key; only the declared nesting nests.
    assert_eq!(
        Value::Object(cfg.nest_params(&flat)),
        json!({"model.lr": 0.01, "model.layers": 2, "optimizer": {"lr": 0.001}})
    );
    // W&B's format keeps the dotted key, and reads back the same.
    let written = serde_json::to_value(&cfg).unwrap();
    assert_eq!(
        written["parameters"]["model.lr"],
        json!({"values": [0.01, 0.1]})
    );
    assert_eq!(parse(written), cfg);
}

#[test]
fn args_no_hyphens_prints_dotted_names_as_hydra_overrides() {
    let cfg = parse(dotted_example());
    let flat: Map<String, Value> = [
        ("model.lr".to_string(), json!(0.01)),
        ("model.layers".to_string(), json!(2)),
        ("optimizer.lr".to_string(), json!(0.001)),
    ]
    .into_iter()
    .collect();
    let cmd = build_command(&cfg, &cfg.nest_params(&flat), &ctx(&no_env)).unwrap();
    assert_eq!(
        cmd,
        [
            "/usr/bin/env",
            "python3",
            "train.py",
            "model.layers=2",
            "model.lr=0.01",
            "optimizer={\"lr\":0.001}",
        ]
    );
}

#[test]
fn leaves_sharing_a_flat_name_are_an_error() {
    // Nested `model` sorts before `model.lr`, so the top-level dotted leaf is second.
    let found = issues(json!({
        "method": "random",
        "parameters": {
            "model.lr": {"value": 0.1},
            "model": {"parameters": {"lr": {"value": 0.2}, "wd": {"value": 0}}},
        },
    }));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].to_string(),
        "parameters.model.lr: its flat name `model.lr` is also that of \
         `parameters.model.parameters.lr`, so a trial could not tell them apart; \
         rename one of them"
    );

    // Inside a group, reported once, at the group's level.
    let found = issues(json!({
        "method": "random",
        "parameters": {"opt": {"parameters": {
            "a": {"parameters": {"b": {"value": 1}}},
            "a.b": {"value": 2},
        }}},
    }));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_issue(
        &found,
        "parameters.opt.parameters.a.b",
        "`a.b` is also that of `parameters.opt.parameters.a.parameters.b`",
    );

    // A leaf whose flat name is a group's is no collision: the values stay apart.
    let cfg = parse(json!({
        "method": "random",
        "parameters": {
            "a.b": {"value": 1},
            "a": {"parameters": {"b": {"parameters": {"c": {"value": 2}}}}},
        },
    }));
    let names: Vec<String> = cfg.flat_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a.b.c", "a.b"]);

    // Deserializing goes through the same check.
    let err = serde_json::from_value::<SweepConfig>(json!({
        "method": "grid",
        "parameters": {"x.y": {"value": 1}, "x": {"parameters": {"y": {"value": 2}}}},
    }))
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("parameters.x.y: its flat name `x.y`"),
        "{err}"
    );
    let err = serde_json::from_value::<Param>(json!({
        "parameters": {"x.y": {"value": 1}, "x": {"parameters": {"y": {"value": 2}}}},
    }))
    .unwrap_err();
    assert!(err.to_string().contains("its flat name `x.y`"), "{err}");
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn ctx(envvar: &dyn Fn(&str) -> Option<String>) -> CommandContext<'_> {
    CommandContext {
        env: "/usr/bin/env",
        interpreter: "python3",
        args_json_file: "/tmp/trial/params.json",
        envvar,
    }
}

fn trial_params() -> Map<String, Value> {
    match json!({
        "lr": 0.001, "bs": 32, "flag": true, "off": false, "name": "adam",
        "none": null, "opt": {"m": 0.9}, "tiny": 1e-5, "whole": 3.0, "list": [1, "a"],
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn with_command(command: &[&str], program: Option<&str>) -> SweepConfig {
    let mut cfg = parse(json!({"method": "random", "parameters": {"x": {"value": 1}}}));
    cfg.command = command.iter().map(|s| s.to_string()).collect();
    cfg.program = program.map(String::from);
    cfg
}

#[test]
fn default_command_expands_args_the_way_wandbs_agent_prints_them() {
    let cfg = with_command(&DEFAULT_COMMAND, Some("train.py"));
    let cmd = build_command(&cfg, &trial_params(), &ctx(&no_env)).unwrap();
    assert_eq!(
        cmd,
        [
            "/usr/bin/env",
            "python3",
            "train.py",
            "--bs=32",
            "--flag=True",
            "--list=[1,\"a\"]",
            "--lr=0.001",
            "--name=adam",
            "--none=None",
            "--off=False",
            "--opt={\"m\":0.9}",
            "--tiny=1e-05",
            "--whole=3.0",
        ]
    );
    // A program that is not a .py file still gets the interpreter, as in W&B.
    let cfg = with_command(&DEFAULT_COMMAND, Some("train.sh"));
    let cmd = build_command(&cfg, &trial_params(), &ctx(&no_env)).unwrap();
    assert_eq!(&cmd[..3], ["/usr/bin/env", "python3", "train.sh"]);
    // An empty env (Windows) drops the item.
    let mut windows = ctx(&no_env);
    windows.env = "";
    let cmd = build_command(&cfg, &trial_params(), &windows).unwrap();
    assert_eq!(&cmd[..2], ["python3", "train.sh"]);
}

#[test]
fn list_macros() {
    let mut params = Map::new();
    params.insert("b".into(), json!(false));
    params.insert("a".into(), json!(true));
    params.insert("lr".into(), json!(0.5));
    let run = |macro_: &str| {
        let cfg = with_command(&["run", macro_], None);
        build_command(&cfg, &params, &ctx(&no_env)).unwrap()
    };
    assert_eq!(run("${args}"), ["run", "--a=True", "--b=False", "--lr=0.5"]);
    assert_eq!(
        run("${args_no_equals}"),
        ["run", "--a", "True", "--b", "False", "--lr", "0.5"]
    );
    assert_eq!(
        run("${args_no_hyphens}"),
        ["run", "a=True", "b=False", "lr=0.5"]
    );
    assert_eq!(run("${args_no_boolean_flags}"), ["run", "--a", "--lr=0.5"]);
}

#[test]
fn json_file_env_and_text_macros() {
    let env = |name: &str| (name == "DATA_DIR").then(|| "/data".to_string());
    let mut params = Map::new();
    params.insert("lr".into(), json!(0.1));
    params.insert("a".into(), json!({"b": [1, 2]}));
    let cfg = with_command(
        &[
            "${interpreter}",
            "${program}",
            "${args_json}",
            "${args_json_file}",
            "--config=${args_json_file}",
            "${envvar:DATA_DIR}",
            "--data=${envvar:DATA_DIR}/x",
            "--prog=${program}:${env}",
            "${unknown}",
            "--keep=${unknown}",
            "--home=${HOME",
        ],
        Some("main.py"),
    );
    let cmd = build_command(&cfg, &params, &ctx(&env)).unwrap();
    assert_eq!(
        cmd,
        [
            "python3",
            "main.py",
            "{\"a\":{\"b\":[1,2]},\"lr\":0.1}",
            "/tmp/trial/params.json",
            "--config=/tmp/trial/params.json",
            "/data",
            "--data=/data/x",
            "--prog=main.py:/usr/bin/env",
            "--keep=${unknown}",
            "--home=${HOME",
        ]
    );
}

#[test]
fn command_errors() {
    let params = trial_params();
    let no_program = with_command(&DEFAULT_COMMAND, None);
    let err = build_command(&no_program, &params, &ctx(&no_env)).unwrap_err();
    assert!(err.contains("no `program`"), "{err}");

    let unset = with_command(&["run", "--out=${envvar:OUT_DIR}"], None);
    let err = build_command(&unset, &params, &ctx(&no_env)).unwrap_err();
    assert!(err.contains("OUT_DIR is not set"), "{err}");

    let embedded = with_command(&["run", "--flags=${args}"], None);
    let err = build_command(&embedded, &params, &ctx(&no_env)).unwrap_err();
    assert!(
        err.contains("`${args}` must be a command item of its own"),
        "{err}"
    );

    // The parser catches the embedded list macro up front, and accepts YAML scalars.
    let found = issues(
        json!({"method": "random", "parameters": {"x": {"value": 1}},
        "command": ["python", "train.py", "x${args_no_hyphens}", null]}),
    );
    assert_issue(
        &found,
        "command[2]",
        "`${args_no_hyphens}` must be a list item of its own",
    );
    assert_issue(&found, "command[3]", "must be a string, not null");
    let cfg = parse(
        json!({"method": "random", "parameters": {"x": {"value": 1}},
        "command": ["python", "train.py", "--epochs", 3000, "--eps", 1e-8, true]}),
    );
    assert_eq!(
        cfg.command,
        [
            "python", "train.py", "--epochs", "3000", "--eps", "1e-08", "True"
        ]
    );
    let cfg = parse(json!({"method": "random", "parameters": {"x": {"value": 1}}, "command": []}));
    assert_eq!(cfg.command, DEFAULT_COMMAND);
}

#[test]
fn floats_print_as_python_does() {
    let cases = [
        (0.001, "0.001"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (1.0, "1.0"),
        (3.0, "3.0"),
        (123.456, "123.456"),
        (-2.5e-7, "-2.5e-07"),
        (1e15, "1000000000000000.0"),
        (1e16, "1e+16"),
        (1.5e300, "1.5e+300"),
        (0.1 + 0.2, "0.30000000000000004"),
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (12345678.9, "12345678.9"),
    ];
    for (x, want) in cases {
        assert_eq!(python_float(x), want, "{x:?}");
    }
}

#[test]
fn serialization_round_trips_through_wandbs_format() {
    let cfg = parse(grid_example());
    let written = serde_json::to_value(&cfg).unwrap();
    assert_eq!(
        written["parameters"]["layers"],
        json!({"distribution": "int_uniform", "min": 1, "max": 3})
    );
    assert_eq!(
        written["parameters"]["optimizer"]["parameters"]["momentum"],
        json!({"value": 0.9})
    );
    assert_eq!(written["optuna_config"]["constant_liar"], json!(true));
    assert_eq!(parse(written.clone()), cfg);
    let read: SweepConfig = serde_json::from_value(written).unwrap();
    assert_eq!(read, cfg);

    let hb = Hyperband {
        min_iter: Some(3),
        max_iter: None,
        s: None,
        eta: 3.0,
        strict: false,
    };
    let hb_json = serde_json::to_value(&hb).unwrap();
    assert_eq!(
        hb_json,
        json!({"type": "hyperband", "min_iter": 3, "eta": 3.0, "strict": false})
    );
    assert_eq!(serde_json::from_value::<Hyperband>(hb_json).unwrap(), hb);

    let err = serde_json::from_value::<SweepConfig>(json!({"method": "grid"})).unwrap_err();
    assert!(err.to_string().contains("parameters: missing"), "{err}");
    let param: Param = serde_json::from_value(json!({"min": 1, "max": 4})).unwrap();
    assert_eq!(
        param,
        Param::Dist(Distribution::IntUniform { min: 1, max: 4 })
    );
    let err = serde_json::from_value::<Param>(json!({"min": 4, "max": 1})).unwrap_err();
    assert!(
        err.to_string().contains("max: must be greater than min"),
        "{err}"
    );
}
