//! The search space of a sweep: its parameters drawn at random, enumerated as a grid, and
//! mapped to and from the dimensions the TPE sampler searches.
//!
//! Sampling follows W&B's definitions: `q_*` rounds to a multiple of q (an integer when q is
//! one), `log_uniform` takes exponents, `inv_log_uniform` is e^-U, `log_normal` is e^N(mu, sigma).
//! For TPE, bounded distributions are searched in their own units (log ones in log space);
//! normal and log-normal ones are searched through their quantiles, so the sampler's uniform
//! start-up draws follow the prior the user wrote.

use rand::Rng;
use serde_json::{Map, Value};
use wanllmdb_api_types::sweeps::{Distribution, Param, SweepConfig};

use super::tpe::Dim;

/// Quantiles searched for unbounded distributions: ±3.1 standard deviations.
const QUANTILE_EPS: f64 = 1e-3;

/// One searchable leaf of the parameter tree.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// Dotted path, e.g. `optimizer.lr`.
    pub name: String,
    /// Its specification.
    pub param: Param,
}

/// The flattened parameters of a sweep.
#[derive(Debug, Clone)]
pub struct Space {
    /// Every leaf, in the config's stable order.
    pub leaves: Vec<Leaf>,
}

impl Space {
    /// The leaves of a validated config.
    pub fn new(cfg: &SweepConfig) -> Space {
        let leaves = cfg
            .flat_params()
            .into_iter()
            .map(|(name, param)| Leaf {
                name,
                param: param.clone(),
            })
            .collect();
        Space { leaves }
    }

    /// A point drawn from every distribution as the config defines it.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Map<String, Value> {
        self.leaves
            .iter()
            .map(|l| (l.name.clone(), sample_param(&l.param, rng)))
            .collect()
    }

    /// Number of grid points, or None when a parameter is continuous.
    pub fn grid_size(&self) -> Option<u64> {
        self.leaves.iter().try_fold(1u64, |acc, l| {
            grid_values(&l.param).map(|v| acc.saturating_mul(v.len() as u64))
        })
    }

    /// The grid point with this index (mixed radix, last parameter fastest).
    pub fn grid_point(&self, mut index: u64) -> Option<Map<String, Value>> {
        let mut out = Map::new();
        let columns: Vec<Vec<Value>> = self
            .leaves
            .iter()
            .map(|l| grid_values(&l.param))
            .collect::<Option<_>>()?;
        for (leaf, values) in self.leaves.iter().zip(&columns).rev() {
            let n = values.len() as u64;
            out.insert(leaf.name.clone(), values[(index % n) as usize].clone());
            index /= n;
        }
        (index == 0).then_some(out)
    }

    /// The searchable leaves (constants left out) and the dimension each becomes.
    pub fn dims(&self) -> Vec<(usize, Dim)> {
        self.leaves
            .iter()
            .enumerate()
            .filter_map(|(i, l)| dim_of(&l.param).map(|d| (i, d)))
            .collect()
    }

    /// A point from TPE coordinates (one per entry of `dims()`).
    pub fn from_coords(&self, dims: &[(usize, Dim)], coords: &[f64]) -> Map<String, Value> {
        let mut out = Map::new();
        for (i, leaf) in self.leaves.iter().enumerate() {
            let value = match dims.iter().position(|(j, _)| *j == i) {
                Some(k) => decode(&leaf.param, coords[k]),
                None => constant(&leaf.param),
            };
            out.insert(leaf.name.clone(), value);
        }
        out
    }

    /// TPE coordinates of a recorded point; None when a value does not fit the space (the
    /// config's values changed, or a parameter is missing).
    pub fn to_coords(&self, dims: &[(usize, Dim)], point: &Map<String, Value>) -> Option<Vec<f64>> {
        dims.iter()
            .map(|(i, _)| {
                let leaf = &self.leaves[*i];
                encode(&leaf.param, point.get(&leaf.name)?)
            })
            .collect()
    }
}

/// The values a grid enumerates for a parameter; None for continuous ones.
fn grid_values(p: &Param) -> Option<Vec<Value>> {
    match p {
        Param::Fixed(v) => Some(vec![v.clone()]),
        Param::Choice { values, .. } => Some(values.clone()),
        Param::Dist(Distribution::IntUniform { min, max }) => {
            Some((*min..=*max).map(Value::from).collect())
        }
        // W&B's grid takes q_uniform as the points min, min + q, … below max.
        Param::Dist(Distribution::QUniform { min, max, q }) => {
            let n = ((max - min) / q).ceil().max(0.0) as u64;
            let whole = q.fract() == 0.0 && min.fract() == 0.0;
            Some(
                (0..n)
                    .map(|k| {
                        let x = min + k as f64 * q;
                        if whole { Value::from(x as i64) } else { num(x) }
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

fn constant(p: &Param) -> Value {
    match p {
        Param::Fixed(v) => v.clone(),
        _ => Value::Null,
    }
}

/// Draws one value of a parameter.
pub fn sample_param<R: Rng + ?Sized>(p: &Param, rng: &mut R) -> Value {
    match p {
        Param::Fixed(v) => v.clone(),
        Param::Choice {
            values,
            probabilities,
        } => values[choose(values.len(), probabilities.as_deref(), rng)].clone(),
        Param::Dist(d) => sample_dist(d, rng),
        // Nested trees are flattened before sampling; a nested leaf never reaches here.
        Param::Nested(_) => Value::Null,
    }
}

fn choose<R: Rng + ?Sized>(n: usize, probabilities: Option<&[f64]>, rng: &mut R) -> usize {
    match probabilities {
        None => rng.random_range(0..n),
        Some(p) => {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            for (i, w) in p.iter().enumerate() {
                acc += w;
                if u < acc {
                    return i;
                }
            }
            // Rounding left the sum a hair under one: the last choice with weight takes it.
            p.iter().rposition(|w| *w > 0.0).unwrap_or(n - 1)
        }
    }
}

fn sample_dist<R: Rng + ?Sized>(d: &Distribution, rng: &mut R) -> Value {
    use Distribution as D;
    let uniform = |rng: &mut R, lo: f64, hi: f64| lo + (hi - lo) * rng.random::<f64>();
    match *d {
        D::IntUniform { min, max } => Value::from(rng.random_range(min..=max)),
        D::Uniform { min, max } => num(uniform(rng, min, max)),
        D::QUniform { min, max, q } => quantize(uniform(rng, min, max), q),
        D::LogUniform { min, max } => num(uniform(rng, min, max).exp()),
        D::LogUniformValues { min, max } => num(uniform(rng, min.ln(), max.ln()).exp()),
        D::InvLogUniform { min, max } => num((-uniform(rng, min, max)).exp()),
        D::InvLogUniformValues { min, max } => num((-uniform(rng, -max.ln(), -min.ln())).exp()),
        D::QLogUniform { min, max, q } => quantize(uniform(rng, min, max).exp(), q),
        D::QLogUniformValues { min, max, q } => quantize(uniform(rng, min.ln(), max.ln()).exp(), q),
        D::Normal { mu, sigma } => num(mu + sigma * std_normal(rng)),
        D::QNormal { mu, sigma, q } => quantize(mu + sigma * std_normal(rng), q),
        D::LogNormal { mu, sigma } => num((mu + sigma * std_normal(rng)).exp()),
        D::QLogNormal { mu, sigma, q } => quantize((mu + sigma * std_normal(rng)).exp(), q),
        D::Beta { a, b } => num(beta(a, b, rng)),
        D::QBeta { a, b, q } => quantize(beta(a, b, rng), q),
    }
}

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// Rounds to a multiple of q; an integer q gives integers, as W&B does.
fn quantize(x: f64, q: f64) -> Value {
    let r = (x / q).round() * q;
    if q.fract() == 0.0 && r.abs() < 9.0e15 {
        Value::from(r as i64)
    } else {
        num(r)
    }
}

/// A standard normal draw (Box–Muller).
fn std_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Gamma(shape, 1) draw (Marsaglia and Tsang; shapes below one boosted by U^(1/shape)).
fn gamma<R: Rng + ?Sized>(shape: f64, rng: &mut R) -> f64 {
    if shape < 1.0 {
        let u: f64 = 1.0 - rng.random::<f64>();
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = std_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u: f64 = 1.0 - rng.random::<f64>();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

fn beta<R: Rng + ?Sized>(a: f64, b: f64, rng: &mut R) -> f64 {
    let x = gamma(a, rng);
    let y = gamma(b, rng);
    if x + y > 0.0 { x / (x + y) } else { 0.5 }
}

/// The TPE dimension of a parameter; None for constants.
fn dim_of(p: &Param) -> Option<Dim> {
    use Distribution as D;
    let float = |low: f64, high: f64, log: bool| Dim::Float {
        low,
        high,
        log,
        step: None,
    };
    let quantiles = || float(QUANTILE_EPS, 1.0 - QUANTILE_EPS, false);
    Some(match p {
        Param::Fixed(_) | Param::Nested(_) => return None,
        Param::Choice { values, .. } => Dim::Categorical { n: values.len() },
        Param::Dist(d) => match *d {
            D::IntUniform { min, max } => Dim::Int {
                low: min,
                high: max,
                log: false,
                step: 1,
            },
            D::Uniform { min, max } | D::QUniform { min, max, .. } => float(min, max, false),
            D::LogUniform { min, max } | D::QLogUniform { min, max, .. } => {
                float(min.exp(), max.exp(), true)
            }
            D::LogUniformValues { min, max }
            | D::QLogUniformValues { min, max, .. }
            | D::InvLogUniformValues { min, max } => float(min, max, true),
            D::InvLogUniform { min, max } => float((-max).exp(), (-min).exp(), true),
            D::Normal { .. } | D::QNormal { .. } | D::LogNormal { .. } | D::QLogNormal { .. } => {
                quantiles()
            }
            D::Beta { .. } | D::QBeta { .. } => float(0.0, 1.0, false),
        },
    })
}

/// The parameter value of a TPE coordinate.
fn decode(p: &Param, x: f64) -> Value {
    use Distribution as D;
    match p {
        Param::Choice { values, .. } => {
            values[(x.round().max(0.0) as usize).min(values.len() - 1)].clone()
        }
        Param::Dist(d) => match *d {
            D::IntUniform { .. } => Value::from(x.round() as i64),
            D::QUniform { q, .. }
            | D::QLogUniform { q, .. }
            | D::QLogUniformValues { q, .. }
            | D::QBeta { q, .. } => quantize(x, q),
            D::Normal { mu, sigma } => num(mu + sigma * normal_ppf(x)),
            D::QNormal { mu, sigma, q } => quantize(mu + sigma * normal_ppf(x), q),
            D::LogNormal { mu, sigma } => num((mu + sigma * normal_ppf(x)).exp()),
            D::QLogNormal { mu, sigma, q } => quantize((mu + sigma * normal_ppf(x)).exp(), q),
            _ => num(x),
        },
        Param::Fixed(v) => v.clone(),
        Param::Nested(_) => Value::Null,
    }
}

/// The TPE coordinate of a parameter value (clamped into the dimension's range).
fn encode(p: &Param, v: &Value) -> Option<f64> {
    use Distribution as D;
    match p {
        Param::Choice { values, .. } => values.iter().position(|c| c == v).map(|i| i as f64),
        Param::Dist(d) => {
            let x = v.as_f64()?;
            let dim = dim_of(p)?;
            let raw = match *d {
                D::Normal { mu, sigma } | D::QNormal { mu, sigma, .. } => {
                    normal_cdf((x - mu) / sigma)
                }
                D::LogNormal { mu, sigma } | D::QLogNormal { mu, sigma, .. } => {
                    if x <= 0.0 {
                        0.0
                    } else {
                        normal_cdf((x.ln() - mu) / sigma)
                    }
                }
                _ => x,
            };
            Some(match dim {
                Dim::Float { low, high, .. } => raw.clamp(low, high),
                Dim::Int { low, high, .. } => raw.round().clamp(low as f64, high as f64),
                Dim::Categorical { .. } => raw,
            })
        }
        Param::Fixed(_) | Param::Nested(_) => None,
    }
}

/// Φ(z), the standard normal CDF.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// erfc with a relative error below 1.2e-7 (Numerical Recipes' Chebyshev fit).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Φ⁻¹(p) for p in (0, 1): Acklam's rational approximation refined by one Newton step.
pub fn normal_ppf(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    let e = normal_cdf(x) - p;
    let u = e * (std::f64::consts::TAU).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;
    use wanllmdb_api_types::sweeps::Distribution as D;

    const N: usize = 40_000;

    fn draws(d: D) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(11);
        let p = Param::Dist(d);
        (0..N)
            .map(|_| sample_param(&p, &mut rng).as_f64().unwrap())
            .collect()
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn std(v: &[f64]) -> f64 {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    fn quantile(v: &[f64], q: f64) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s[((s.len() - 1) as f64 * q) as usize]
    }

    /// `got` is within `tol` (relative to `scale`) of `want`.
    fn near(got: f64, want: f64, tol: f64, what: &str) {
        assert!(
            (got - want).abs() <= tol,
            "{what}: got {got}, want {want} ± {tol}"
        );
    }

    #[test]
    fn uniform_and_int_uniform_cover_their_range_evenly() {
        let v = draws(D::Uniform { min: 2.0, max: 4.0 });
        assert!(v.iter().all(|x| (2.0..=4.0).contains(x)));
        near(mean(&v), 3.0, 0.02, "uniform mean");
        near(quantile(&v, 0.25), 2.5, 0.03, "uniform q25");
        let v = draws(D::IntUniform { min: -1, max: 2 });
        for k in -1..=2 {
            let share = v.iter().filter(|x| **x == k as f64).count() as f64 / N as f64;
            near(share, 0.25, 0.015, "int_uniform share");
        }
    }

    #[test]
    fn log_distributions_are_uniform_in_log_space() {
        let v = draws(D::LogUniformValues {
            min: 1e-4,
            max: 1e-1,
        });
        assert!(v.iter().all(|x| (1e-4..=1e-1).contains(x)));
        let logs: Vec<f64> = v.iter().map(|x| x.log10()).collect();
        near(mean(&logs), -2.5, 0.02, "log_uniform_values mean of log10");
        near(quantile(&logs, 0.1), -3.7, 0.03, "log_uniform_values q10");
        // Exponent bounds: e^U with U in [0, 2].
        let v = draws(D::LogUniform { min: 0.0, max: 2.0 });
        near(
            mean(&v.iter().map(|x| x.ln()).collect::<Vec<_>>()),
            1.0,
            0.02,
            "log_uniform",
        );
        // inv_log_uniform: e^-U with U in [1, 3], so the values lie in [e^-3, e^-1].
        let v = draws(D::InvLogUniform { min: 1.0, max: 3.0 });
        assert!(
            v.iter()
                .all(|x| ((-3f64).exp()..=(-1f64).exp()).contains(x))
        );
        near(
            mean(&v.iter().map(|x| -x.ln()).collect::<Vec<_>>()),
            2.0,
            0.02,
            "inv_log_uniform",
        );
        let v = draws(D::InvLogUniformValues {
            min: 0.01,
            max: 1.0,
        });
        assert!(v.iter().all(|x| (0.01..=1.0).contains(x)));
        near(
            quantile(&v, 0.5),
            0.1,
            0.005,
            "inv_log_uniform_values median",
        );
    }

    #[test]
    fn normal_family_has_the_right_moments() {
        let v = draws(D::Normal {
            mu: 1.0,
            sigma: 2.0,
        });
        near(mean(&v), 1.0, 0.04, "normal mean");
        near(std(&v), 2.0, 0.04, "normal std");
        near(quantile(&v, 0.8413), 3.0, 0.06, "normal one sigma");
        let v = draws(D::LogNormal {
            mu: 0.5,
            sigma: 0.3,
        });
        assert!(v.iter().all(|x| *x > 0.0));
        near(quantile(&v, 0.5), 0.5f64.exp(), 0.02, "log_normal median");
        near(
            std(&v.iter().map(|x| x.ln()).collect::<Vec<_>>()),
            0.3,
            0.01,
            "log_normal sigma",
        );
    }

    #[test]
    fn beta_has_the_right_mean_and_variance() {
        for (a, b) in [(2.0, 5.0), (0.5, 0.5), (3.0, 1.0)] {
            let v = draws(D::Beta { a, b });
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
            let m = a / (a + b);
            let var = a * b / ((a + b).powi(2) * (a + b + 1.0));
            near(mean(&v), m, 0.01, "beta mean");
            near(std(&v), var.sqrt(), 0.01, "beta std");
        }
    }

    #[test]
    fn quantized_values_are_multiples_of_q() {
        let mut rng = StdRng::seed_from_u64(3);
        for d in [
            D::QUniform {
                min: 0.0,
                max: 100.0,
                q: 5.0,
            },
            D::QLogUniformValues {
                min: 1.0,
                max: 1000.0,
                q: 10.0,
            },
            D::QNormal {
                mu: 0.0,
                sigma: 50.0,
                q: 2.0,
            },
            D::QLogNormal {
                mu: 2.0,
                sigma: 1.0,
                q: 4.0,
            },
            D::QBeta {
                a: 2.0,
                b: 2.0,
                q: 1.0,
            },
        ] {
            let q = match d {
                D::QUniform { q, .. }
                | D::QLogUniformValues { q, .. }
                | D::QNormal { q, .. }
                | D::QLogNormal { q, .. }
                | D::QBeta { q, .. } => q,
                _ => unreachable!(),
            };
            for _ in 0..500 {
                let v = sample_param(&Param::Dist(d), &mut rng);
                // An integer q gives integers, as W&B does.
                assert!(v.is_i64(), "{d:?}: {v}");
                assert_eq!(v.as_i64().unwrap() % q as i64, 0, "{d:?}: {v}");
            }
        }
        let v = sample_param(
            &Param::Dist(D::QUniform {
                min: 0.0,
                max: 1.0,
                q: 0.25,
            }),
            &mut rng,
        );
        let x = v.as_f64().unwrap();
        assert_eq!((x / 0.25).fract(), 0.0, "{x}");
    }

    #[test]
    fn choices_follow_their_probabilities() {
        let mut rng = StdRng::seed_from_u64(5);
        let p = Param::Choice {
            values: vec![text("a"), text("b"), text("c")],
            probabilities: Some(vec![0.7, 0.2, 0.1]),
        };
        let mut counts = [0usize; 3];
        for _ in 0..N {
            let v = sample_param(&p, &mut rng);
            counts[["a", "b", "c"].iter().position(|c| v == text(c)).unwrap()] += 1;
        }
        for (c, want) in counts.iter().zip([0.7, 0.2, 0.1]) {
            near(*c as f64 / N as f64, want, 0.01, "choice share");
        }
    }

    fn text(s: &str) -> Value {
        Value::String(s.into())
    }

    #[test]
    fn normal_cdf_and_ppf_invert_each_other() {
        for p in [1e-6, 0.001, 0.02, 0.3, 0.5, 0.77, 0.975, 0.999_9] {
            let x = normal_ppf(p);
            near(normal_cdf(x), p, 1e-7 + p * 1e-6, "cdf(ppf(p))");
        }
        near(normal_ppf(0.975), 1.959_964, 1e-5, "ppf(0.975)");
    }

    #[test]
    fn grid_points_enumerate_the_product_and_tpe_coordinates_round_trip() {
        let cfg = wanllmdb_api_types::sweeps::parse_sweep_config(&serde_json::json!({
            "method": "grid",
            "parameters": {
                "a": {"values": [1, 2]},
                "b": {"parameters": {"c": {"min": 0, "max": 2}, "d": {"value": "x"}}}
            }
        }))
        .unwrap();
        let space = Space::new(&cfg);
        assert_eq!(space.grid_size(), Some(6));
        let pts: std::collections::BTreeSet<String> = (0..6)
            .map(|i| Value::Object(space.grid_point(i).unwrap()).to_string())
            .collect();
        assert_eq!(pts.len(), 6);
        assert!(space.grid_point(6).is_none());
        let cfg = wanllmdb_api_types::sweeps::parse_sweep_config(&serde_json::json!({
            "method": "grid",
            "parameters": {"q": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}}
        }))
        .unwrap();
        let space = Space::new(&cfg);
        assert_eq!(space.grid_size(), cfg.grid_size());
        let qs: Vec<Value> = (0..4)
            .map(|i| space.grid_point(i).unwrap()["q"].clone())
            .collect();
        assert_eq!(qs, vec![json!(0.0), json!(0.25), json!(0.5), json!(0.75)]);

        let cfg = wanllmdb_api_types::sweeps::parse_sweep_config(&serde_json::json!({
            "method": "bayes",
            "metric": {"name": "loss"},
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.1},
                "n": {"min": 1, "max": 9},
                "z": {"distribution": "normal", "mu": 3.0, "sigma": 0.5},
                "opt": {"values": ["adam", "sgd"]},
                "k": {"value": 7}
            }
        }))
        .unwrap();
        let space = Space::new(&cfg);
        let dims = space.dims();
        assert_eq!(dims.len(), 4, "the constant is not searched");
        let mut rng = StdRng::seed_from_u64(9);
        let only: Vec<Dim> = dims.iter().map(|(_, d)| d.clone()).collect();
        for _ in 0..200 {
            let point =
                space.from_coords(&dims, &super::super::tpe::sample_uniform(&only, &mut rng));
            assert_eq!(point["k"], 7);
            let coords = space.to_coords(&dims, &point).unwrap();
            let back = space.from_coords(&dims, &coords);
            for (k, v) in &point {
                let (a, b) = (v.as_f64(), back[k].as_f64());
                match (a, b) {
                    (Some(a), Some(b)) => near(b, a, 1e-6 * a.abs().max(1.0), k),
                    _ => assert_eq!(v, &back[k]),
                }
            }
        }
    }
}
