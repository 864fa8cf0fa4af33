//! Bayesian search with a Tree-structured Parzen Estimator (TPE).
//!
//! The algorithm is Bergstra et al., "Algorithms for Hyper-Parameter Optimization" (NeurIPS 2011).
//! Defaults and heuristics follow the behaviour Optuna documents for its `TPESampler` (v5):
//! random startup trials, the best `min(⌈0.1·n⌉, 25)` completed trials form the "below" density
//! l(x) and everything else (plus running trials under the constant liar) the "above" density
//! g(x); candidates are drawn from l(x) and the one maximising log l(x) − log g(x) wins.
//!
//! Both densities are mixtures with one truncated-normal kernel per trial (discretised on grids,
//! categorical kernels for choices) plus a wide prior kernel at the centre of the range. Only
//! minimisation is modelled: callers negate the objective to maximise it.

use rand::Rng;

/// One search dimension, in the parameter's natural units.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    /// A real in [low, high]; `log` searches in log space (low > 0); `step` puts values on low + k·step.
    Float {
        low: f64,
        high: f64,
        log: bool,
        step: Option<f64>,
    },
    /// An integer in [low, high] on low + k·step (step ≥ 1); `log` searches in log space (low ≥ 1).
    Int {
        low: i64,
        high: i64,
        log: bool,
        step: i64,
    },
    /// One of `n` unordered choices, encoded as the index 0..n (as f64).
    Categorical { n: usize },
}

/// A past or running trial: one value per Dim (categorical index as f64); `value` None = still running.
#[derive(Debug, Clone)]
pub struct Observation {
    /// One value per Dim, in natural units.
    pub params: Vec<f64>,
    /// The objective (lower is better); None while the trial runs.
    pub value: Option<f64>,
}

/// Tuning knobs of the estimator; `Default` gives the recommended settings.
#[derive(Debug, Clone)]
pub struct TpeOptions {
    /// Completed trials sampled uniformly at random before the model is used.
    pub n_startup_trials: usize,
    /// Candidates drawn from l(x) per suggestion; more means greedier.
    pub n_ei_candidates: usize,
    /// Model all dimensions jointly instead of one at a time. On by default, as in Optuna 5:
    /// independent TPE cannot see interactions and lost clearly in docs/BENCHMARKS.md.
    pub multivariate: bool,
    /// Count running trials as bad ones so parallel agents spread out.
    pub constant_liar: bool,
    /// Weight of the wide prior kernel relative to one observation.
    pub prior_weight: f64,
}

impl Default for TpeOptions {
    fn default() -> Self {
        TpeOptions {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            multivariate: true,
            constant_liar: false,
            prior_weight: 1.0,
        }
    }
}

/// A uniformly random point (used for startup trials; also public for callers).
pub fn sample_uniform<R: Rng + ?Sized>(dims: &[Dim], rng: &mut R) -> Vec<f64> {
    dims.iter()
        .map(|d| Axis::new(d).sample_uniform(rng))
        .collect()
}

/// The next point to try (one value per dim, inside its bounds and on its grid).
///
/// `history` must be in trial order (oldest first): older trials get smaller kernel weights.
/// Values that are NaN or +∞ count as the worst; observations whose parameters do not fit
/// `dims` (wrong length, non-finite, unknown category) are ignored.
pub fn suggest<R: Rng + ?Sized>(
    dims: &[Dim],
    history: &[Observation],
    opts: &TpeOptions,
    rng: &mut R,
) -> Vec<f64> {
    let axes: Vec<Axis> = dims.iter().map(Axis::new).collect();
    let trials = usable_trials(&axes, history, opts.constant_liar);
    let completed = trials.iter().filter(|t| t.loss.is_some()).count();
    if completed < opts.n_startup_trials {
        return sample_uniform(dims, rng);
    }
    let (below, above) = split(&trials);
    let mut point: Vec<f64> = axes.iter().map(Axis::fixed_value).collect();
    let free: Vec<usize> = (0..axes.len()).filter(|&d| axes[d].is_free()).collect();
    let groups: Vec<Vec<usize>> = if opts.multivariate {
        vec![free]
    } else {
        free.into_iter().map(|d| vec![d]).collect()
    };
    let model = Model {
        axes: &axes,
        trials: &trials,
        opts,
    };
    for group in groups.iter().filter(|g| !g.is_empty()) {
        let best = model.best_candidate(group, &below, &above, rng);
        for (&d, x) in group.iter().zip(best) {
            point[d] = x;
        }
    }
    point
}

/// Optuna's documented split size: the best 10 % of completed trials, at most 25.
fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// Kernel weights in trial order: the last 25 weigh 1, older ones ramp linearly from 1/n up to 1.
fn trial_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp_len = n - 25;
    let start = 1.0 / n as f64;
    let mut w: Vec<f64> = (0..ramp_len)
        .map(|i| match ramp_len {
            1 => start,
            _ => start + (1.0 - start) * i as f64 / (ramp_len - 1) as f64,
        })
        .collect();
    w.resize(n, 1.0);
    w
}

/// A trial in model coordinates: log-transformed where the axis is log, category index otherwise.
struct Trial {
    x: Vec<f64>,
    loss: Option<f64>,
}

/// Checked, transformed trials; running ones are kept only when they will be used as lies.
fn usable_trials(axes: &[Axis], history: &[Observation], keep_running: bool) -> Vec<Trial> {
    history
        .iter()
        .filter(|o| o.value.is_some() || keep_running)
        .filter_map(|o| {
            if o.params.len() != axes.len() {
                return None;
            }
            let x = axes
                .iter()
                .zip(&o.params)
                .map(|(a, &v)| a.observed(v))
                .collect::<Option<Vec<f64>>>()?;
            // NaN sorts as the worst value, like +∞ (a crashed trial).
            let loss = o.value.map(|v| if v.is_nan() { f64::INFINITY } else { v });
            Some(Trial { x, loss })
        })
        .collect()
}

/// Indices of the "below" (best completed) and "above" (the rest, running included) trials,
/// each in trial order.
fn split(trials: &[Trial]) -> (Vec<usize>, Vec<usize>) {
    let mut done: Vec<(usize, f64)> = trials
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.loss.map(|l| (i, l)))
        .collect();
    let n_below = gamma(done.len()).min(done.len());
    // A stable sort: equal values keep trial order, so the split is reproducible.
    done.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut is_below = vec![false; trials.len()];
    for &(i, _) in &done[..n_below] {
        is_below[i] = true;
    }
    (0..trials.len()).partition(|&i| is_below[i])
}

/// Where a dimension's values live, after sanitising the declared bounds.
#[derive(Debug, Clone)]
enum Axis {
    /// Only one value is possible (or the declaration is unusable): nothing to model.
    Fixed(f64),
    /// Reals or a numeric grid.
    Numeric(NumAxis),
    /// `n ≥ 2` unordered choices.
    Choice(usize),
}

/// A numeric dimension; the model works in "model space" (log-transformed when `log`).
#[derive(Debug, Clone)]
struct NumAxis {
    low: f64,
    /// Snapped onto the grid when there is one.
    high: f64,
    log: bool,
    /// Grid spacing in natural units and the number of steps from `low` to `high`.
    grid: Option<(f64, f64)>,
    /// Lowest natural value of the first grid cell (kept positive in log space).
    edge_low: f64,
    /// The kernels' support in model space: the range, widened by half a step on a grid.
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(dim: &Dim) -> Axis {
        match *dim {
            Dim::Float {
                low,
                high,
                log,
                step,
            } => {
                let step = step.filter(|s| s.is_finite() && *s > 0.0);
                NumAxis::build(low, high, log, step)
            }
            Dim::Int {
                low,
                high,
                log,
                step,
            } => NumAxis::build(low as f64, high as f64, log, Some(step.max(1) as f64)),
            Dim::Categorical { n } if n >= 2 => Axis::Choice(n),
            Dim::Categorical { .. } => Axis::Fixed(0.0),
        }
    }

    fn is_free(&self) -> bool {
        !matches!(self, Axis::Fixed(_))
    }

    fn fixed_value(&self) -> f64 {
        match self {
            Axis::Fixed(v) => *v,
            _ => f64::NAN,
        }
    }

    /// An observed parameter in model space, or None when it cannot belong to this axis.
    fn observed(&self, v: f64) -> Option<f64> {
        match self {
            Axis::Fixed(_) => Some(0.0),
            Axis::Numeric(a) if v.is_finite() => Some(a.to_model(a.snap(v))),
            Axis::Numeric(_) => None,
            Axis::Choice(n) => {
                let ok = v.fract() == 0.0 && v >= 0.0 && v < *n as f64;
                ok.then_some(v)
            }
        }
    }

    fn sample_uniform<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self {
            Axis::Fixed(v) => *v,
            Axis::Numeric(a) => a.sample_uniform(rng),
            Axis::Choice(n) => rng.random_range(0..*n) as f64,
        }
    }
}

impl NumAxis {
    /// An axis from declared bounds; unusable declarations degrade instead of panicking.
    fn build(low: f64, high: f64, log: bool, step: Option<f64>) -> Axis {
        if !low.is_finite() || !high.is_finite() {
            return Axis::Fixed(if low.is_finite() { low } else { 0.0 });
        }
        let (low, high) = if low <= high {
            (low, high)
        } else {
            (high, low)
        };
        let log = log && low > 0.0;
        // A step below 1e-15 of the range is no grid at all (and would overflow the count).
        let grid = step
            .map(|s| (s, ((high - low) / s + 1e-9).floor()))
            .filter(|(_, k)| *k < 1e15);
        let high = grid.map_or(high, |(s, k)| low + k * s);
        if high <= low {
            return Axis::Fixed(low);
        }
        let half = grid.map_or(0.0, |(s, _)| s / 2.0);
        let edge_low = if log && low - half <= 0.0 {
            low / 2.0
        } else {
            low - half
        };
        let mut axis = NumAxis {
            low,
            high,
            log,
            grid,
            edge_low,
            lo: 0.0,
            hi: 0.0,
        };
        axis.lo = axis.to_model(edge_low);
        axis.hi = axis.to_model(high + half);
        Axis::Numeric(axis)
    }

    fn to_model(&self, x: f64) -> f64 {
        if self.log { x.ln() } else { x }
    }

    fn natural(&self, m: f64) -> f64 {
        if self.log { m.exp() } else { m }
    }

    /// The nearest allowed natural value.
    fn snap(&self, x: f64) -> f64 {
        match self.grid {
            Some((s, k)) => {
                let i = ((x - self.low) / s).round().clamp(0.0, k);
                (self.low + i * s).clamp(self.low, self.high)
            }
            None => x.clamp(self.low, self.high),
        }
    }

    /// The model-space interval whose kernel mass a grid value receives.
    fn cell(&self, x: f64) -> (f64, f64) {
        let half = self.grid.map_or(0.0, |(s, _)| s / 2.0);
        let left = (x - half).max(self.edge_low);
        (self.to_model(left), self.to_model(x + half))
    }

    fn sample_uniform<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match self.grid {
            // Linear grids: every grid value equally likely.
            Some((s, k)) if !self.log => {
                let i = rng.random_range(0..=k as u64) as f64;
                (self.low + i * s).min(self.high)
            }
            // Reals, and log grids: uniform over the support in model space, where each grid
            // value owns its cell, so small values are likelier on a log grid.
            _ => {
                let m = self.lo + rng.random::<f64>() * (self.hi - self.lo);
                self.snap(self.natural(m))
            }
        }
    }
}

/// The inputs shared by every density fitted for one suggestion.
struct Model<'a> {
    axes: &'a [Axis],
    trials: &'a [Trial],
    opts: &'a TpeOptions,
}

impl Model<'_> {
    /// The candidate from l(x) over `dims` with the largest log l(x) − log g(x), in natural units.
    fn best_candidate<R: Rng + ?Sized>(
        &self,
        dims: &[usize],
        below: &[usize],
        above: &[usize],
        rng: &mut R,
    ) -> Vec<f64> {
        let l = self.mixture(dims, below);
        let g = self.mixture(dims, above);
        let n = self.opts.n_ei_candidates.max(1);
        // Draws repeat often on grids and choices; scoring each distinct point once gives the
        // same winner (the first best) for less work.
        let mut candidates: Vec<Vec<f64>> = Vec::with_capacity(n);
        for _ in 0..n {
            let c = l.sample(self.axes, rng);
            if !candidates.contains(&c) {
                candidates.push(c);
            }
        }
        let score_l = l.log_pdf(self.axes, &candidates);
        let score_g = g.log_pdf(self.axes, &candidates);
        let mut best = 0;
        let mut best_score = f64::NEG_INFINITY;
        for (i, (a, b)) in score_l.iter().zip(&score_g).enumerate() {
            let s = a - b;
            // NaN (both densities zero) never wins; the first of equal scores does.
            if s > best_score {
                best = i;
                best_score = s;
            }
        }
        candidates.into_iter().nth(best).unwrap_or_default()
    }

    /// The Parzen mixture over `dims` of the trials `members` plus the prior kernel.
    fn mixture(&self, dims: &[usize], members: &[usize]) -> Mixture {
        let prior_weight = self.opts.prior_weight.max(0.0);
        let mut weights = trial_weights(members.len());
        weights.push(if members.is_empty() {
            1.0
        } else {
            prior_weight
        });
        let total: f64 = weights.iter().sum();
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut acc = 0.0;
        for w in &weights {
            acc += w / total;
            cumulative.push(acc);
        }
        let log_weights = weights.iter().map(|w| (w / total).ln()).collect();
        let parts = dims
            .iter()
            .map(|&d| {
                let column: Vec<f64> = members.iter().map(|&i| self.trials[i].x[d]).collect();
                match &self.axes[d] {
                    Axis::Numeric(a) => Part::numeric(d, a, column),
                    Axis::Choice(n) => Part::choice(*n, &column, prior_weight),
                    // Not reached: fixed dimensions are never modelled. One certain choice.
                    Axis::Fixed(_) => Part::choice(1, &column, prior_weight),
                }
            })
            .collect();
        Mixture {
            log_weights,
            cumulative,
            parts,
        }
    }
}

/// A mixture whose kernel `k` is a product over dimensions of each part's kernel `k`.
struct Mixture {
    log_weights: Vec<f64>,
    cumulative: Vec<f64>,
    parts: Vec<Part>,
}

/// One dimension's kernels; the last kernel is the prior.
enum Part {
    Numeric {
        dim: usize,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        /// log of each kernel's mass inside the support, to renormalise the truncation.
        log_norm: Vec<f64>,
    },
    Choice {
        n: usize,
        /// Row-major kernels × choices.
        log_probs: Vec<f64>,
    },
}

impl Part {
    fn numeric(dim: usize, axis: &NumAxis, mut mus: Vec<f64>) -> Part {
        let width = axis.hi - axis.lo;
        let mut sigmas = neighbour_bandwidths(&mus, axis.lo, axis.hi);
        // The "magic clip": no kernel narrower than range / min(n + 2, 100), so a few close
        // observations cannot collapse the density onto a point.
        let min_sigma = width / (mus.len() as f64 + 2.0).min(100.0);
        for s in &mut sigmas {
            *s = s.clamp(min_sigma, width);
        }
        mus.push(0.5 * (axis.lo + axis.hi));
        sigmas.push(width);
        let log_norm = mus
            .iter()
            .zip(&sigmas)
            .map(|(m, s)| normal::log_mass((axis.lo - m) / s, (axis.hi - m) / s))
            .collect();
        Part::Numeric {
            dim,
            mus,
            sigmas,
            log_norm,
        }
    }

    /// Each observed choice keeps most of its kernel's mass; the prior weight is spread evenly.
    fn choice(n: usize, observed: &[f64], prior_weight: f64) -> Part {
        let kernels = observed.len() + 1;
        let base = if observed.is_empty() {
            1.0
        } else {
            prior_weight / kernels as f64
        };
        let mut probs = vec![base; kernels * n];
        for (k, &c) in observed.iter().enumerate() {
            probs[k * n + c as usize] += 1.0;
        }
        let log_probs = probs
            .chunks(n)
            .flat_map(|row| {
                let sum: f64 = row.iter().sum();
                let sum = if sum > 0.0 { sum } else { 1.0 };
                row.iter().map(move |p| (p / sum).ln())
            })
            .collect();
        Part::Choice { n, log_probs }
    }
}

/// Each kernel's width is the larger gap to its sorted neighbours (the range ends count as
/// neighbours only when there is a single observation, so edge points do not get huge kernels).
fn neighbour_bandwidths(mus: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let n = mus.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
    let sorted: Vec<f64> = order.iter().map(|&i| mus[i]).collect();
    let at = |i: usize| match i {
        0 => lo,
        i if i == n + 1 => hi,
        i => sorted[i - 1],
    };
    let mut sigmas = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        let left = at(rank + 1) - at(rank);
        let right = at(rank + 2) - at(rank + 1);
        sigmas[i] = match (rank, n) {
            (_, 1) => left.max(right),
            (0, _) => right,
            (r, _) if r == n - 1 => left,
            _ => left.max(right),
        };
    }
    sigmas
}

impl Mixture {
    /// One draw: pick a kernel by weight, then sample each dimension from that kernel.
    fn sample<R: Rng + ?Sized>(&self, axes: &[Axis], rng: &mut R) -> Vec<f64> {
        let u = rng.random::<f64>();
        let last = self.cumulative.len() - 1;
        let k = self.cumulative.partition_point(|&c| c <= u).min(last);
        self.parts
            .iter()
            .map(|part| match part {
                Part::Numeric {
                    dim, mus, sigmas, ..
                } => {
                    let Axis::Numeric(a) = &axes[*dim] else {
                        return 0.0;
                    };
                    let (m, s) = (mus[k], sigmas[k]);
                    let z = normal::sample_truncated((a.lo - m) / s, (a.hi - m) / s, rng.random());
                    a.snap(a.natural((m + s * z).clamp(a.lo, a.hi)))
                }
                Part::Choice { n, log_probs, .. } => {
                    let row = &log_probs[k * n..(k + 1) * n];
                    pick_choice(row, rng.random())
                }
            })
            .collect()
    }

    /// log density of each candidate (natural units, one value per part).
    fn log_pdf(&self, axes: &[Axis], candidates: &[Vec<f64>]) -> Vec<f64> {
        let kernels = self.log_weights.len();
        let mut acc: Vec<f64> = Vec::with_capacity(candidates.len() * kernels);
        for _ in candidates {
            acc.extend_from_slice(&self.log_weights);
        }
        for (p, part) in self.parts.iter().enumerate() {
            let xs: Vec<f64> = candidates.iter().map(|c| c[p]).collect();
            part.add_log_pdf(axes, &xs, &mut acc);
        }
        acc.chunks(kernels).map(log_sum_exp).collect()
    }
}

impl Part {
    /// Adds each kernel's log density at each `xs` to the candidates × kernels matrix `acc`.
    fn add_log_pdf(&self, axes: &[Axis], xs: &[f64], acc: &mut [f64]) {
        match self {
            Part::Choice { n, log_probs, .. } => {
                let kernels = log_probs.len() / n;
                for (row, &x) in acc.chunks_mut(kernels).zip(xs) {
                    let c = (x as usize).min(n - 1);
                    for (k, a) in row.iter_mut().enumerate() {
                        *a += log_probs[k * n + c];
                    }
                }
            }
            Part::Numeric {
                dim,
                mus,
                sigmas,
                log_norm,
            } => {
                let Axis::Numeric(axis) = &axes[*dim] else {
                    return;
                };
                if axis.grid.is_some() {
                    add_grid_log_pdf(axis, mus, sigmas, log_norm, xs, acc);
                } else {
                    add_continuous_log_pdf(axis, mus, sigmas, log_norm, xs, acc);
                }
            }
        }
    }
}

fn add_continuous_log_pdf(
    axis: &NumAxis,
    mus: &[f64],
    sigmas: &[f64],
    log_norm: &[f64],
    xs: &[f64],
    acc: &mut [f64],
) {
    let offsets: Vec<f64> = sigmas
        .iter()
        .zip(log_norm)
        .map(|(s, z)| -s.ln() - normal::LN_SQRT_2PI - z)
        .collect();
    let inv: Vec<f64> = sigmas.iter().map(|s| 1.0 / s).collect();
    for (row, &x) in acc.chunks_mut(mus.len()).zip(xs) {
        let m = axis.to_model(x);
        for k in 0..mus.len() {
            let z = (m - mus[k]) * inv[k];
            row[k] += offsets[k] - 0.5 * z * z;
        }
    }
}

/// On a grid a value's density is its cell's share of the truncated kernel. Candidates and
/// kernels repeat a lot on small grids, so each distinct (value, kernel) pair is computed once.
fn add_grid_log_pdf(
    axis: &NumAxis,
    mus: &[f64],
    sigmas: &[f64],
    log_norm: &[f64],
    xs: &[f64],
    acc: &mut [f64],
) {
    let (kernel_of, distinct) = distinct_kernels(mus, sigmas);
    let mut values: Vec<f64> = xs.to_vec();
    values.sort_by(f64::total_cmp);
    values.dedup();
    let table: Vec<Vec<f64>> = values
        .iter()
        .map(|&v| {
            let (l, r) = axis.cell(v);
            distinct
                .iter()
                .map(|&k| {
                    let (m, s) = (mus[k], sigmas[k]);
                    normal::log_cell_mass((l - m) / s, (r - m) / s) - log_norm[k]
                })
                .collect()
        })
        .collect();
    for (row, x) in acc.chunks_mut(mus.len()).zip(xs) {
        let v = values.partition_point(|u| u < x).min(values.len() - 1);
        for (a, &d) in row.iter_mut().zip(&kernel_of) {
            *a += table[v][d];
        }
    }
}

/// Groups kernels with identical (mu, sigma): returns each kernel's group and one member per group.
fn distinct_kernels(mus: &[f64], sigmas: &[f64]) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..mus.len()).collect();
    order.sort_by(|&a, &b| {
        mus[a]
            .total_cmp(&mus[b])
            .then(sigmas[a].total_cmp(&sigmas[b]))
    });
    let mut kernel_of = vec![0; mus.len()];
    let mut distinct: Vec<usize> = Vec::new();
    for &k in &order {
        let same = distinct
            .last()
            .is_some_and(|&d| mus[d] == mus[k] && sigmas[d] == sigmas[k]);
        if !same {
            distinct.push(k);
        }
        kernel_of[k] = distinct.len() - 1;
    }
    (kernel_of, distinct)
}

/// Inverse-CDF draw from one categorical kernel given as log probabilities.
fn pick_choice(log_row: &[f64], u: f64) -> f64 {
    let mut acc = 0.0;
    for (i, lp) in log_row.iter().enumerate() {
        acc += lp.exp();
        if u < acc {
            return i as f64;
        }
    }
    // Rounding left the total a hair under 1: take the last choice with any mass.
    log_row.iter().rposition(|lp| lp.is_finite()).unwrap_or(0) as f64
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    // Terms 40 nats below the largest add less than 1e-17 each; skipping their exp saves most
    // of the work when many kernels sit far from the point.
    let floor = max - 40.0;
    let sum: f64 = v
        .iter()
        .filter(|&&x| x > floor)
        .map(|x| (x - max).exp())
        .sum();
    max + sum.ln()
}

/// Standard-normal numerics, accurate far into the tails (kernels are often truncated there).
mod normal {
    use std::f64::consts::{FRAC_1_SQRT_2, LN_2};

    /// ln √(2π).
    pub const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
    const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

    /// Chebyshev coefficients of ln(erfcx(x)/t) in u = 2t − 1, t = 2/(2 + x), x ≥ 0; computed
    /// offline at 40 digits and cut where the terms fall below 1e-17.
    const ERFCX_CHEB: [f64; 28] = [
        -0.6513268598908547,
        0.6419697923564902,
        0.019476473204185836,
        -0.009561514786808632,
        -0.0009465953444820369,
        0.00036683949785276145,
        4.252332480690777e-05,
        -2.0278578112534242e-05,
        -1.6242900046470256e-06,
        1.3036558355805232e-06,
        1.5626441722066142e-08,
        -8.523809591492654e-08,
        6.5290544390988515e-09,
        5.059343495551469e-09,
        -9.91364156493033e-10,
        -2.273651222931836e-10,
        9.646791102015527e-11,
        2.3940380830391146e-12,
        -6.886027526497553e-12,
        8.944879273090725e-13,
        3.130921399342958e-13,
        -1.1270822361367252e-13,
        3.810905255189232e-16,
        7.106097613609237e-15,
        -1.5230282014571043e-15,
        -9.457494571291233e-17,
        1.210237189224279e-16,
        -2.816663087747177e-17,
    ];

    /// ln of the scaled complementary error function exp(x²)·erfc(x), for x ≥ 0.
    fn ln_erfcx(x: f64) -> f64 {
        let t = 2.0 / (2.0 + x);
        let u = 2.0 * t - 1.0;
        // Clenshaw recurrence for Σ c_k T_k(u).
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in ERFCX_CHEB[1..].iter().rev() {
            let b0 = c + 2.0 * u * b1 - b2;
            b2 = b1;
            b1 = b0;
        }
        t.ln() + ERFCX_CHEB[0] + u * b1 - b2
    }

    /// exp(x²)·erfc(x), for x ≥ 0.
    fn erfcx(x: f64) -> f64 {
        ln_erfcx(x).exp()
    }

    /// Φ(z) for z ≤ 0, without cancellation in the tail.
    fn cdf_lower(z: f64) -> f64 {
        if z < -38.5 {
            return 0.0; // Below the smallest positive f64.
        }
        let s = -z * FRAC_1_SQRT_2;
        0.5 * erfcx(s) * (-s * s).exp()
    }

    /// ln Φ(z).
    pub fn log_cdf(z: f64) -> f64 {
        if z < 0.0 {
            let s = -z * FRAC_1_SQRT_2;
            ln_erfcx(s) - LN_2 - s * s
        } else {
            (-cdf_lower(-z)).ln_1p()
        }
    }

    /// ln(Φ(b) − Φ(a)) for a < b, computed on the side where the tail is thin.
    pub fn log_mass(a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() || a >= b {
            f64::NEG_INFINITY
        } else if b <= 0.0 {
            log_diff(log_cdf(b), log_cdf(a))
        } else if a >= 0.0 {
            log_diff(log_cdf(-a), log_cdf(-b))
        } else {
            // A tail beyond 9σ holds under 1e-19: invisible next to the rest, and skipping it
            // saves the work for the many kernels well inside the range.
            let tail = |z: f64| if z < -9.0 { 0.0 } else { cdf_lower(z) };
            (-(tail(a) + tail(-b))).ln_1p()
        }
    }

    /// ln(Φ(b) − Φ(a)) like `log_mass`, faster for the narrow cells of a grid: there the mass is
    /// φ(m)·h·Σ_k He_2k(m)·(h/2)^2k / (2k+1)! around the midpoint m, for h = b − a, and seven
    /// terms are exact to about 1e-11 while h ≤ 1 and |m|·h ≤ 2.
    pub fn log_cell_mass(a: f64, b: f64) -> f64 {
        let (h, m) = (b - a, 0.5 * (a + b));
        if !(h > 0.0 && h <= 1.0 && m.abs() * h <= 2.0) {
            return log_mass(a, b);
        }
        let q = 0.25 * h * h;
        // Probabilists' Hermite polynomials by recurrence; only even orders enter the sum.
        let (mut he_prev, mut he) = (1.0, m);
        let (mut sum, mut scale) = (1.0, 1.0);
        for n in 1..13 {
            let next = m * he - n as f64 * he_prev;
            he_prev = he;
            he = next;
            if n % 2 == 1 {
                // `he` is now He_{n+1}, an even order 2k with 2k = n + 1.
                scale *= q / ((n + 1) * (n + 2)) as f64;
                sum += he * scale;
            }
        }
        -0.5 * m * m - LN_SQRT_2PI + h.ln() + sum.ln()
    }

    /// ln(e^p − e^q) for q ≤ p.
    fn log_diff(p: f64, q: f64) -> f64 {
        let d = q - p;
        let tail = if d > -LN_2 {
            (-d.exp_m1()).ln()
        } else {
            (-d.exp()).ln_1p()
        };
        p + tail
    }

    fn log_add(p: f64, q: f64) -> f64 {
        let (hi, lo) = if p >= q { (p, q) } else { (q, p) };
        if hi == f64::NEG_INFINITY {
            return hi;
        }
        hi + (lo - hi).exp().ln_1p()
    }

    /// φ(z)/Φ(z), the slope of ln Φ.
    fn log_cdf_slope(z: f64) -> f64 {
        if z < 0.0 {
            SQRT_2_OVER_PI / erfcx(-z * FRAC_1_SQRT_2)
        } else {
            (-0.5 * z * z - LN_SQRT_2PI - log_cdf(z)).exp()
        }
    }

    /// The z ≤ 0 with ln Φ(z) = y, for y ≤ ln ½.
    fn inverse_log_cdf(y: f64) -> f64 {
        // −√(−2y) lies left of the root; ln Φ is concave, so Newton then climbs monotonically.
        let mut z = if y < -1.5 {
            -(-2.0 * y).sqrt()
        } else {
            let p = y.exp();
            (p / (1.0 - p)).ln() / 1.702
        };
        for _ in 0..100 {
            let step = (log_cdf(z) - y) / log_cdf_slope(z);
            if !step.is_finite() {
                break;
            }
            z -= step;
            if step.abs() <= 1e-13 * (1.0 + z.abs()) {
                break;
            }
        }
        z
    }

    /// A standard normal draw conditioned on [a, b], by inverting the CDF at `u` ∈ [0, 1).
    pub fn sample_truncated(a: f64, b: f64, u: f64) -> f64 {
        if a >= 0.0 {
            // Work on the mirrored interval so the lower tail (where Φ is accurate) is used.
            return -sample_truncated(-b, -a, 1.0 - u);
        }
        let mass = log_mass(a, b);
        let lp = log_add(log_cdf(a), u.ln() + mass);
        let z = if lp <= -LN_2 {
            inverse_log_cdf(lp)
        } else {
            let lq = log_add(log_cdf(-b), (1.0 - u).ln() + mass);
            -inverse_log_cdf(lq.min(-LN_2))
        };
        if z.is_finite() {
            z.clamp(a, b)
        } else {
            0.5 * (a + b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn mixed_dims() -> Vec<Dim> {
        vec![
            Dim::Float {
                low: -2.0,
                high: 3.0,
                log: false,
                step: None,
            },
            Dim::Float {
                low: 1e-5,
                high: 1e-1,
                log: true,
                step: None,
            },
            Dim::Float {
                low: 0.0,
                high: 0.5,
                log: false,
                step: Some(0.05),
            },
            Dim::Int {
                low: 8,
                high: 512,
                log: true,
                step: 1,
            },
            Dim::Int {
                low: 1,
                high: 10,
                log: false,
                step: 3,
            },
            Dim::Categorical { n: 4 },
        ]
    }

    /// Panics with the offending value when `x` is not a legal value of `dim`.
    fn assert_legal(dim: &Dim, x: f64) {
        let on_grid = |low: f64, step: f64| {
            let k = (x - low) / step;
            (k - k.round()).abs() < 1e-9
        };
        let ok = match *dim {
            Dim::Float {
                low, high, step, ..
            } => x >= low && x <= high && step.is_none_or(|s| on_grid(low, s)),
            Dim::Int {
                low, high, step, ..
            } => x >= low as f64 && x <= high as f64 && on_grid(low as f64, step as f64),
            Dim::Categorical { n } => x.fract() == 0.0 && x >= 0.0 && x < n as f64,
        };
        assert!(ok, "{x} is not a legal value of {dim:?}");
    }

    fn quadratic(p: &[f64]) -> f64 {
        p.iter().map(|x| (x - 0.3) * (x - 0.3)).sum()
    }

    /// Runs `trials` sequential trials on `f` and returns the best value.
    fn optimise(
        dims: &[Dim],
        f: impl Fn(&[f64]) -> f64,
        trials: usize,
        seed: u64,
        tpe: bool,
    ) -> f64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut history: Vec<Observation> = Vec::new();
        let opts = TpeOptions::default();
        for _ in 0..trials {
            let params = if tpe {
                suggest(dims, &history, &opts, &mut rng)
            } else {
                sample_uniform(dims, &mut rng)
            };
            let value = Some(f(&params));
            history.push(Observation { params, value });
        }
        history
            .iter()
            .filter_map(|o| o.value)
            .fold(f64::INFINITY, f64::min)
    }

    #[test]
    fn every_suggestion_is_inside_bounds_and_on_grid() {
        let dims = mixed_dims();
        for multivariate in [false, true] {
            let opts = TpeOptions {
                multivariate,
                n_startup_trials: 3,
                ..TpeOptions::default()
            };
            let mut rng = StdRng::seed_from_u64(7);
            let mut history = Vec::new();
            for i in 0..40 {
                let params = suggest(&dims, &history, &opts, &mut rng);
                assert_eq!(params.len(), dims.len());
                for (d, &x) in dims.iter().zip(&params) {
                    assert_legal(d, x);
                }
                let value = Some(params.iter().sum::<f64>() + i as f64 * 0.01);
                history.push(Observation { params, value });
            }
        }
    }

    #[test]
    fn uniform_samples_cover_grids_and_choices() {
        let dims = mixed_dims();
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen_ints = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let p = sample_uniform(&dims, &mut rng);
            for (d, &x) in dims.iter().zip(&p) {
                assert_legal(d, x);
            }
            seen_ints.insert(p[4] as i64);
        }
        // 1..10 on a step of 3 is {1, 4, 7, 10}: the snapped top is reachable.
        assert_eq!(seen_ints.into_iter().collect::<Vec<_>>(), vec![1, 4, 7, 10]);
    }

    #[test]
    fn seeded_runs_are_reproducible() {
        let dims = mixed_dims();
        let history: Vec<Observation> = (0..30)
            .map(|i| {
                let mut rng = StdRng::seed_from_u64(i);
                let params = sample_uniform(&dims, &mut rng);
                let value = Some(params[0] * params[0]);
                Observation { params, value }
            })
            .collect();
        for multivariate in [false, true] {
            let opts = TpeOptions {
                multivariate,
                ..TpeOptions::default()
            };
            let a = suggest(&dims, &history, &opts, &mut StdRng::seed_from_u64(42));
            let b = suggest(&dims, &history, &opts, &mut StdRng::seed_from_u64(42));
            let c = suggest(&dims, &history, &opts, &mut StdRng::seed_from_u64(43));
            assert_eq!(a, b);
            assert_ne!(a, c);
        }
    }

    #[test]
    fn infinite_and_nan_values_count_as_worst() {
        let dims = vec![Dim::Float {
            low: 0.0,
            high: 1.0,
            log: false,
            step: None,
        }];
        // Everything above 0.5 crashed; good trials sit near 0.1.
        let history: Vec<Observation> = (0..40)
            .map(|i| {
                let x = (i as f64 + 0.5) / 40.0;
                let value = match i % 3 {
                    _ if x < 0.5 => Some((x - 0.1).abs()),
                    0 => Some(f64::NAN),
                    _ => Some(f64::INFINITY),
                };
                Observation {
                    params: vec![x],
                    value,
                }
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..20 {
            let x = suggest(&dims, &history, &TpeOptions::default(), &mut rng)[0];
            assert!(
                x.is_finite() && x < 0.5,
                "suggested {x} among crashed trials"
            );
        }
    }

    #[test]
    fn degenerate_histories_still_give_legal_points() {
        let dims = mixed_dims();
        let opts = TpeOptions {
            n_startup_trials: 0,
            constant_liar: true,
            ..TpeOptions::default()
        };
        let mut rng = StdRng::seed_from_u64(5);
        let point = sample_uniform(&dims, &mut rng);
        let running = |p: &Vec<f64>| Observation {
            params: p.clone(),
            value: None,
        };
        let done = |p: &Vec<f64>, v: f64| Observation {
            params: p.clone(),
            value: Some(v),
        };
        let histories = vec![
            vec![],
            vec![running(&point), running(&point), running(&point)],
            vec![done(&point, 1.0)],
            (0..30).map(|_| done(&point, 2.0)).collect(),
            (0..30).map(|_| done(&point, f64::INFINITY)).collect(),
            vec![Observation {
                params: vec![1.0],
                value: Some(0.0),
            }],
        ];
        for multivariate in [false, true] {
            let opts = TpeOptions {
                multivariate,
                ..opts.clone()
            };
            for h in &histories {
                let p = suggest(&dims, h, &opts, &mut rng);
                for (d, &x) in dims.iter().zip(&p) {
                    assert_legal(d, x);
                }
            }
        }
    }

    #[test]
    fn degenerate_dims_do_not_panic() {
        let dims = vec![
            Dim::Float {
                low: 2.0,
                high: 2.0,
                log: false,
                step: None,
            },
            Dim::Int {
                low: 5,
                high: 5,
                log: true,
                step: 1,
            },
            Dim::Categorical { n: 1 },
            Dim::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: None,
            },
        ];
        let history: Vec<Observation> = (0..15)
            .map(|i| Observation {
                params: vec![2.0, 5.0, 0.0, i as f64 / 15.0],
                value: Some(i as f64),
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(9);
        let p = suggest(&dims, &history, &TpeOptions::default(), &mut rng);
        assert_eq!(&p[..3], &[2.0, 5.0, 0.0]);
        assert!((0.0..=1.0).contains(&p[3]));
    }

    #[test]
    fn one_dimension_concentrates_near_the_good_region() {
        let dims = vec![Dim::Float {
            low: -10.0,
            high: 10.0,
            log: false,
            step: None,
        }];
        let history: Vec<Observation> = (0..50)
            .map(|i| {
                let x = -10.0 + 20.0 * (i as f64 * 0.618_034).fract();
                Observation {
                    params: vec![x],
                    value: Some((x - 4.0).powi(2)),
                }
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(11);
        let near = (0..50)
            .filter(|_| {
                let x = suggest(&dims, &history, &TpeOptions::default(), &mut rng)[0];
                (x - 4.0).abs() < 2.0
            })
            .count();
        // Uniform sampling lands within 2 of the optimum 20 % of the time.
        assert!(near >= 35, "only {near} of 50 suggestions near the optimum");
    }

    #[test]
    fn constant_liar_pushes_suggestions_away_from_running_trials() {
        let dims = vec![
            Dim::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: None,
            },
            Dim::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: None,
            },
        ];
        // Completed trials are good near (0.5, 0.5); ten agents are already running there.
        let mut history: Vec<Observation> = (0..40)
            .map(|i| {
                let p = vec![
                    (i as f64 * 0.618_034).fract(),
                    (i as f64 * 0.414_214).fract(),
                ];
                let value = Some((p[0] - 0.5).powi(2) + (p[1] - 0.5).powi(2));
                Observation { params: p, value }
            })
            .collect();
        for i in 0..10 {
            let jitter = i as f64 * 0.002;
            history.push(Observation {
                params: vec![0.5 + jitter, 0.5 - jitter],
                value: None,
            });
        }
        let mean_distance = |liar: bool| {
            let opts = TpeOptions {
                constant_liar: liar,
                multivariate: true,
                ..TpeOptions::default()
            };
            let mut rng = StdRng::seed_from_u64(21);
            let total: f64 = (0..100)
                .map(|_| {
                    let p = suggest(&dims, &history, &opts, &mut rng);
                    ((p[0] - 0.5).powi(2) + (p[1] - 0.5).powi(2)).sqrt()
                })
                .sum();
            total / 100.0
        };
        let (honest, liar) = (mean_distance(false), mean_distance(true));
        assert!(
            liar > 1.3 * honest,
            "liar mean distance {liar} vs honest {honest}"
        );
    }

    #[test]
    fn beats_random_search_on_a_quadratic() {
        let dims: Vec<Dim> = (0..3)
            .map(|_| Dim::Float {
                low: -5.0,
                high: 5.0,
                log: false,
                step: None,
            })
            .collect();
        let seeds = 0..16u64;
        let mean = |tpe: bool| {
            let total: f64 = seeds
                .clone()
                .map(|s| optimise(&dims, quadratic, 60, s, tpe))
                .sum();
            total / seeds.clone().count() as f64
        };
        let (tpe, random) = (mean(true), mean(false));
        assert!(tpe < 0.5 * random, "TPE mean best {tpe} vs random {random}");
    }

    /// Densities of one fitted estimator, against reference values computed independently
    /// (Optuna 5.0's Parzen estimator on the same observations).
    #[test]
    fn fitted_densities_match_the_reference_estimator() {
        let dims = [
            Dim::Float {
                low: -5.0,
                high: 10.0,
                log: false,
                step: None,
            },
            Dim::Float {
                low: 1e-4,
                high: 1.0,
                log: true,
                step: None,
            },
            Dim::Int {
                low: 0,
                high: 20,
                log: false,
                step: 2,
            },
            Dim::Int {
                low: 1,
                high: 64,
                log: true,
                step: 1,
            },
            Dim::Categorical { n: 3 },
        ];
        let observed = [
            [1.0, 0.01, 4.0, 3.0, 0.0],
            [2.5, 0.2, 4.0, 16.0, 2.0],
            [7.0, 0.0003, 18.0, 64.0, 0.0],
            [-3.0, 0.05, 10.0, 1.0, 1.0],
            [9.9, 0.9, 0.0, 5.0, 0.0],
        ];
        let points = vec![
            vec![-4.0, 0.0002, 0.0, 1.0, 0.0],
            vec![0.0, 0.01, 6.0, 3.0, 1.0],
            vec![3.0, 0.3, 14.0, 30.0, 2.0],
            vec![9.5, 0.9, 20.0, 64.0, 0.0],
        ];
        let per_dim = [
            [
                -3.0183988878431887,
                -2.701137738526749,
                -2.6947153359118365,
                -2.54394156218353,
            ],
            [
                -2.802773668479657,
                -2.35468496317818,
                -1.7518733973985356,
                -1.8787495904498932,
            ],
            [
                -2.077380415810849,
                -2.1311770961797434,
                -2.733733623951864,
                -3.0067264263969045,
            ],
            [
                -1.6590996757299867,
                -2.5215435831744974,
                -5.042782559582578,
                -5.9388512845393615,
            ],
            [
                -0.7308875085427924,
                -1.349926716949016,
                -1.349926716949016,
                -0.7308875085427924,
            ],
        ];
        let joint = [
            -10.745629239342906,
            -10.289199374459086,
            -13.128318805647075,
            -14.908201580631866,
        ];
        let prior_only = [
            -10.112278296994191,
            -10.971165774678612,
            -13.387321090093478,
            -14.456847351276913,
        ];

        let axes: Vec<Axis> = dims.iter().map(Axis::new).collect();
        let history: Vec<Observation> = observed
            .iter()
            .map(|p| Observation {
                params: p.to_vec(),
                value: Some(0.0),
            })
            .collect();
        let trials = usable_trials(&axes, &history, false);
        let opts = TpeOptions::default();
        let model = Model {
            axes: &axes,
            trials: &trials,
            opts: &opts,
        };
        let all: Vec<usize> = (0..trials.len()).collect();
        let close = |got: Vec<f64>, want: &[f64]| {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
            }
        };
        for (d, want) in per_dim.iter().enumerate() {
            let xs: Vec<Vec<f64>> = points.iter().map(|p| vec![p[d]]).collect();
            close(model.mixture(&[d], &all).log_pdf(&axes, &xs), want);
        }
        let every_dim = [0, 1, 2, 3, 4];
        close(
            model.mixture(&every_dim, &all).log_pdf(&axes, &points),
            &joint,
        );
        close(
            model.mixture(&every_dim, &[]).log_pdf(&axes, &points),
            &prior_only,
        );
    }

    #[test]
    fn weights_ramp_only_past_25_trials() {
        assert_eq!(trial_weights(3), vec![1.0; 3]);
        let w = trial_weights(100);
        assert_eq!(w.len(), 100);
        assert!((w[0] - 0.01).abs() < 1e-12);
        assert!(w.windows(2).all(|p| p[0] <= p[1]));
        assert_eq!(&w[75..], &[1.0; 25]);
        assert_eq!(gamma(0), 0);
        assert_eq!(gamma(11), 2);
        assert_eq!(gamma(1000), 25);
    }

    #[test]
    fn normal_numerics_match_reference_values() {
        // Reference values from a 40-digit computation.
        let cases = [
            (0.0, -std::f64::consts::LN_2),
            (-1.0, -1.841_021_645_009_264_4),
            (-10.0, -53.231_285_150_512_47),
            (-40.0, -804.608_442_013_754_2),
            (3.0, -0.001_350_809_964_748_202),
        ];
        for (z, want) in cases {
            let got = normal::log_cdf(z);
            assert!(
                (got - want).abs() < 1e-12 * want.abs().max(1e-3),
                "{z}: {got} vs {want}"
            );
        }
        // A truncated draw stays inside even far in the tail.
        for u in [0.0, 0.3, 0.999_999] {
            let z = normal::sample_truncated(30.0, 31.0, u);
            assert!((30.0..=31.0).contains(&z));
            let z = normal::sample_truncated(-3.0, 40.0, u);
            assert!((-3.0..=40.0).contains(&z));
        }
        // Grid cells, narrow ones included, against a 50-digit computation.
        let cells = [
            (-30.0, -30.0 + 2f64.powi(-30), -471.713_353_936_033_2),
            (0.5, 0.5 + 2f64.powi(-20), -14.906_882_382_822_3),
            (-3.0, -2.25, -4.521_327_817_860_716),
            (7.0, 7.5, -27.409_556_070_792_62),
        ];
        for (a, b, want) in cells {
            let got = normal::log_cell_mass(a, b);
            assert!(
                (got - want).abs() < 1e-10 * want.abs(),
                "[{a}, {b}]: {got} vs {want}"
            );
        }
        // Where the direct difference is well conditioned, the shortcut agrees with it.
        for i in 0..2000 {
            let a = -30.0 + 0.0301 * i as f64;
            for h in [0.01, 0.3, 1.0] {
                let (fast, slow) = (normal::log_cell_mass(a, a + h), normal::log_mass(a, a + h));
                assert!((fast - slow).abs() < 1e-9, "[{a}, +{h}]: {fast} vs {slow}");
            }
        }
        // Half the mass of [0, ∞) lies below the median 0.6745.
        let z = normal::sample_truncated(0.0, 50.0, 0.5);
        assert!((z - 0.674_489_750_196_081_7).abs() < 1e-9, "{z}");
    }
}
