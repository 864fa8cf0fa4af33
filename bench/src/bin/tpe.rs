//! TPE benchmark: our Bayesian search against Optuna's default `TPESampler` on functions shaped
//! like hyperparameter spaces, plus the latency of one suggestion over a long history. Prints
//! the table in docs/BENCHMARKS.md.
//!
//! `cargo build --release -p wanllmdb-bench --bin wanllmdb-tpe-bench &&
//!  WANLLMDB_BENCH_PYTHON=/tmp/optuna-venv/bin/python ./target/release/wanllmdb-tpe-bench`
//! Options: `--seeds N` (default 20), `--trials N` (default 30). The Optuna side runs
//! `bench/optuna_tpe.py` with `$WANLLMDB_BENCH_PYTHON` (default `python3`); without Optuna the
//! program says so and prints our figures alone.

use std::f64::consts::PI;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use wanllmdb_server::sweeps::tpe::{Dim, Observation, TpeOptions, sample_uniform, suggest};

/// The interpreter for the Optuna side.
const PYTHON_ENV: &str = "WANLLMDB_BENCH_PYTHON";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/optuna_tpe.py");

struct Args {
    seeds: u64,
    trials: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        seeds: 20,
        trials: 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let value = it.next().context("missing value")?;
        match x.as_str() {
            "--seeds" => a.seeds = value.parse()?,
            "--trials" => a.trials = value.parse()?,
            other => bail!("unknown argument {other}; use --seeds, --trials"),
        }
    }
    Ok(a)
}

/// A test function and its search space; bench/optuna_tpe.py defines the same ones.
struct Problem {
    name: &'static str,
    dims: Vec<Dim>,
    f: fn(&[f64]) -> f64,
}

fn float(low: f64, high: f64) -> Dim {
    Dim::Float {
        low,
        high,
        log: false,
        step: None,
    }
}

fn problems() -> Vec<Problem> {
    vec![
        Problem {
            name: "lr_batch_dropout",
            dims: vec![
                Dim::Float {
                    low: 1e-5,
                    high: 1e-1,
                    log: true,
                    step: None,
                },
                Dim::Int {
                    low: 8,
                    high: 512,
                    log: true,
                    step: 1,
                },
                Dim::Float {
                    low: 0.0,
                    high: 0.5,
                    log: false,
                    step: Some(0.05),
                },
            ],
            f: lr_batch_dropout,
        },
        Problem {
            name: "branin",
            dims: vec![float(-5.0, 10.0), float(0.0, 15.0)],
            f: branin,
        },
        Problem {
            name: "mixed_optimizer",
            dims: vec![
                Dim::Categorical { n: 4 },
                Dim::Float {
                    low: 1e-5,
                    high: 1.0,
                    log: true,
                    step: None,
                },
                Dim::Int {
                    low: 1,
                    high: 8,
                    log: false,
                    step: 1,
                },
                Dim::Int {
                    low: 32,
                    high: 512,
                    log: false,
                    step: 32,
                },
            ],
            f: mixed_optimizer,
        },
        Problem {
            name: "hartmann6",
            dims: vec![float(0.0, 1.0); 6],
            f: hartmann6,
        },
        Problem {
            name: "styblinski_tang5",
            dims: vec![float(-5.0, 5.0); 5],
            f: styblinski_tang5,
        },
    ]
}

/// Validation loss over learning rate (log), batch size (log int) and dropout (stepped): the
/// best learning rate grows with the batch size, and too high a rate diverges faster.
fn lr_batch_dropout(x: &[f64]) -> f64 {
    let (lr, batch, dropout) = (x[0], x[1], x[2]);
    let lr_opt = -3.0 + 0.35 * (batch / 64.0).log2();
    let d = lr.log10() - lr_opt;
    0.2 + 0.5 * d * d
        + 0.25 * d.max(0.0).powi(3)
        + 0.015 * (batch.log2() - 7.0).powi(2)
        + 0.8 * (dropout - 0.15).powi(2)
}

fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (x[0], x[1]);
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

/// Each optimizer has its own best learning rate, floor and sensitivity.
const OPT_LR: [f64; 4] = [-1.0, -1.7, -3.3, -2.8];
const OPT_BASE: [f64; 4] = [0.32, 0.27, 0.22, 0.25];
const OPT_SENS: [f64; 4] = [0.8, 0.6, 0.4, 0.5];

fn mixed_optimizer(x: &[f64]) -> f64 {
    let o = (x[0] as usize).min(3);
    let d = x[1].log10() - OPT_LR[o];
    OPT_BASE[o]
        + OPT_SENS[o] * d * d
        + 0.03 * (x[2] - 4.0).powi(2)
        + 0.02 * (x[3].log2() - 8.0).powi(2)
}

const H_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const H_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

fn hartmann6(x: &[f64]) -> f64 {
    let mut total = 0.0;
    for i in 0..4 {
        let inner: f64 = (0..6).map(|j| H_A[i][j] * (x[j] - H_P[i][j]).powi(2)).sum();
        total -= H_ALPHA[i] * (-inner).exp();
    }
    total
}

fn styblinski_tang5(x: &[f64]) -> f64 {
    0.5 * x
        .iter()
        .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
        .sum::<f64>()
}

/// Best value after `trials` sequential trials with one seed.
fn best_after(p: &Problem, opts: Option<&TpeOptions>, trials: usize, seed: u64) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut history: Vec<Observation> = Vec::with_capacity(trials);
    let mut best = f64::INFINITY;
    for _ in 0..trials {
        let params = match opts {
            Some(o) => suggest(&p.dims, &history, o, &mut rng),
            None => sample_uniform(&p.dims, &mut rng),
        };
        let value = (p.f)(&params);
        best = best.min(value);
        history.push(Observation {
            params,
            value: Some(value),
        });
    }
    best
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Fixed points at which both languages must agree on every function.
fn probes(p: &Problem) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(99);
    (0..5).map(|_| sample_uniform(&p.dims, &mut rng)).collect()
}

/// Runs the Optuna side; Err when the interpreter or script could not run at all.
fn run_optuna(problems: &[Problem], args: &Args) -> Result<Value> {
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".into());
    let request = json!({
        "seeds": args.seeds,
        "trials": args.trials,
        "probes": problems.iter().map(|p| (p.name.to_owned(), json!(probes(p)))).collect::<serde_json::Map<_, _>>(),
    });
    let mut child = Command::new(&python)
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {python} {SCRIPT}"))?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(request.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{python} {SCRIPT} exited with {}", out.status);
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Fails loudly when the Python definitions drift from ours.
fn check_probes(problems: &[Problem], optuna: &Value) -> Result<()> {
    for p in problems {
        let theirs = optuna["probes"][p.name]
            .as_array()
            .context("probe values missing")?;
        for (x, v) in probes(p).iter().zip(theirs) {
            let (ours, theirs) = ((p.f)(x), v.as_f64().unwrap_or(f64::NAN));
            if (ours - theirs).abs() > 1e-9 * (1.0 + ours.abs()) {
                bail!("{}: Rust gives {ours} but Python {theirs} at {x:?}", p.name);
            }
        }
    }
    Ok(())
}

/// Median latency of `suggest` over 1,000 completed trials in a 5-dimension mixed space.
fn latency_us(multivariate: bool) -> f64 {
    let dims = vec![
        Dim::Float {
            low: 1e-5,
            high: 1e-1,
            log: true,
            step: None,
        },
        Dim::Int {
            low: 8,
            high: 512,
            log: true,
            step: 1,
        },
        Dim::Float {
            low: 0.0,
            high: 0.5,
            log: false,
            step: Some(0.05),
        },
        Dim::Categorical { n: 4 },
        Dim::Int {
            low: 1,
            high: 8,
            log: false,
            step: 1,
        },
    ];
    let mut rng = StdRng::seed_from_u64(1);
    let history: Vec<Observation> = (0..1000)
        .map(|_| {
            let params = sample_uniform(&dims, &mut rng);
            let value = Some(lr_batch_dropout(&params) + params[3] * 0.01);
            Observation { params, value }
        })
        .collect();
    let opts = TpeOptions {
        multivariate,
        ..TpeOptions::default()
    };
    let times: Vec<f64> = (0..50)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(suggest(&dims, &history, &opts, &mut rng));
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    median(times)
}

/// The chance that one of our seeds ends strictly better than one of Optuna's (ties count
/// half): 0.5 means the two distributions of best values are alike.
fn p_better(ours: &[f64], theirs: &[f64]) -> f64 {
    let wins: f64 = ours
        .iter()
        .flat_map(|a| {
            theirs.iter().map(move |b| match a.total_cmp(b) {
                std::cmp::Ordering::Less => 1.0,
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Greater => 0.0,
            })
        })
        .sum();
    wins / (ours.len() * theirs.len()).max(1) as f64
}

/// The comparison columns: Optuna's median, whether ours is no worse, P(ours < Optuna), and in
/// how many disjoint blocks of 20 seeds ours is no worse (which shows how much a 20-seed median
/// moves by luck alone).
fn compare(ours: &[f64], theirs: Option<&[f64]>) -> [String; 4] {
    let Some(theirs) = theirs else {
        return ["—".into(), "—".into(), "—".into(), "—".into()];
    };
    let (ours_med, theirs_med) = (median(ours.to_vec()), median(theirs.to_vec()));
    let blocks: Vec<bool> = ours
        .chunks_exact(20)
        .zip(theirs.chunks_exact(20))
        .map(|(a, b)| median(a.to_vec()) <= median(b.to_vec()))
        .collect();
    let blocks = match blocks.len() {
        0 | 1 => "—".into(),
        n => format!("{}/{n}", blocks.iter().filter(|&&b| b).count()),
    };
    [
        format!("{theirs_med:.4}"),
        if ours_med <= theirs_med { "yes" } else { "no" }.into(),
        format!("{:.2}", p_better(ours, theirs)),
        blocks,
    ]
}

/// Prints where the comparison comes from, or why there is no Optuna column.
fn print_header(optuna: Option<&Value>, args: &Args) {
    match optuna.map(|v| (v, v["optuna_version"].as_str())) {
        Some((_, Some(version))) => println!("Optuna {version}, TPESampler(seed=s) defaults"),
        Some((v, None)) => println!(
            "Optuna not available: {} (set {PYTHON_ENV} to a Python with optuna installed)",
            v["error"].as_str().unwrap_or("unknown error")
        ),
        None => println!("Optuna not available: the Python side did not run"),
    }
    println!(
        "best value after {} trials, median over {} seeds (lower is better)\n",
        args.trials, args.seeds
    );
    println!(
        "| function | ours (default: multivariate) | ours (independent) | Optuna default TPE | random search | ours ≤ Optuna? | P(ours < Optuna) | 20-seed blocks with ours ≤ Optuna |"
    );
    println!("|---|---|---|---|---|---|---|---|");
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let problems = problems();
    let default = TpeOptions::default();
    let independent = TpeOptions {
        multivariate: false,
        ..TpeOptions::default()
    };
    eprintln!(
        "running the Optuna side ({} seeds × {} trials)…",
        args.seeds, args.trials
    );
    let optuna = match run_optuna(&problems, &args) {
        Ok(v) => {
            check_probes(&problems, &v)?;
            Some(v)
        }
        Err(e) => {
            eprintln!("warning: could not run the Optuna side: {e:#}");
            None
        }
    };
    print_header(optuna.as_ref(), &args);
    for p in &problems {
        let run = |o: Option<&TpeOptions>| -> Vec<f64> {
            (0..args.seeds)
                .map(|s| best_after(p, o, args.trials, s))
                .collect()
        };
        let ours = run(Some(&default));
        let (indep, random) = (median(run(Some(&independent))), median(run(None)));
        let theirs: Option<Vec<f64>> = optuna
            .as_ref()
            .and_then(|v| v["best"][p.name].as_array())
            .map(|a| a.iter().filter_map(Value::as_f64).collect());
        let [theirs_med, verdict, p_text, blocks] = compare(&ours, theirs.as_deref());
        println!(
            "| {} | {:.4} | {indep:.4} | {theirs_med} | {random:.4} | {verdict} | {p_text} | {blocks} |",
            p.name,
            median(ours.clone()),
        );
    }
    println!(
        "\nsuggest() latency, 1,000 completed trials, 5 dimensions, median of 50 calls: \
         {:.0} µs (multivariate), {:.0} µs (independent)",
        latency_us(true),
        latency_us(false)
    );
    Ok(())
}
