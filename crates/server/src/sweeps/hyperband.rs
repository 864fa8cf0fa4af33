//! Hyperband early termination with W&B's semantics.
//!
//! An iteration is the n-th value logged for the sweep's metric. Bands are the iteration
//! counts `min_iter·eta^k`, or `max_iter/eta^k` for k = 1..=s. At each band the threshold is
//! the value that the best 1/eta of the runs that reached it beat (all runs count, finished or
//! not). A running run past a band whose value is worse than that band's threshold is stopped:
//! by default its best value so far is compared (conservative), with `strict` its value at
//! the band itself.

use wanllmdb_api_types::sweeps::{Goal, Hyperband};

/// Iteration counts at which runs are compared, ascending.
pub fn bands(cfg: &Hyperband) -> Vec<u64> {
    let mut out = Vec::new();
    if let Some(max_iter) = cfg.max_iter {
        let mut band = max_iter as f64;
        for _ in 0..cfg.s.unwrap_or(1) {
            band /= cfg.eta;
            if band < 1.0 {
                break;
            }
            out.push(band as u64);
        }
    } else if let Some(min_iter) = cfg.min_iter {
        let mut band = min_iter as f64;
        // Bands past any plausible run length cost nothing; 64 keeps the list finite.
        for _ in 0..64 {
            if band > u64::MAX as f64 / 2.0 {
                break;
            }
            out.push(band as u64);
            band *= cfg.eta;
        }
    }
    out.retain(|b| *b >= 1);
    out.sort_unstable();
    out.dedup();
    out
}

/// One run's history of the metric, for the decision.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Whether the run is still running (only those can be stopped).
    pub running: bool,
    /// The metric's values in the order they were logged (NaN and infinities left out),
    /// shared with the controller's curve cache rather than copied on every check.
    pub values: std::sync::Arc<Vec<f64>>,
}

/// Why a run should stop.
#[derive(Debug, Clone, PartialEq)]
pub struct StopDecision {
    /// Index of the run in the input.
    pub index: usize,
    /// The band it failed.
    pub band: u64,
    /// The value compared.
    pub value: f64,
    /// The threshold it missed.
    pub threshold: f64,
}

/// The running runs to stop now.
pub fn decide(cfg: &Hyperband, goal: Goal, curves: &[Curve]) -> Vec<StopDecision> {
    let bands = bands(cfg);
    let sign = match goal {
        Goal::Minimize => 1.0,
        Goal::Maximize => -1.0,
    };
    // Lower is better from here on.
    let histories: Vec<Vec<f64>> = curves
        .iter()
        .map(|c| c.values.iter().map(|v| sign * v).collect())
        .collect();
    let keep = 1.0 / cfg.eta;
    let thresholds: Vec<f64> = bands
        .iter()
        .map(|&band| {
            let mut at: Vec<f64> = histories
                .iter()
                .filter(|h| h.len() as u64 >= band)
                .map(|h| h[band as usize - 1])
                .collect();
            if at.is_empty() {
                return f64::INFINITY;
            }
            at.sort_by(f64::total_cmp);
            at[((keep * at.len() as f64) as usize).min(at.len() - 1)]
        })
        .collect();
    let mut out = Vec::new();
    for (index, (curve, h)) in curves.iter().zip(&histories).enumerate() {
        if !curve.running {
            continue;
        }
        let Some(k) = bands.iter().rposition(|b| *b <= h.len() as u64) else {
            continue;
        };
        let value = if cfg.strict {
            h[bands[k] as usize - 1]
        } else {
            h.iter().copied().fold(f64::INFINITY, f64::min)
        };
        if value > thresholds[k] {
            out.push(StopDecision {
                index,
                band: bands[k],
                value: sign * value,
                threshold: sign * thresholds[k],
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(min_iter: Option<u64>, max_iter: Option<u64>, s: Option<u64>, eta: f64) -> Hyperband {
        Hyperband {
            min_iter,
            max_iter,
            s,
            eta,
            strict: false,
        }
    }

    fn curve(running: bool, values: &[f64]) -> Curve {
        Curve {
            running,
            values: std::sync::Arc::new(values.to_vec()),
        }
    }

    #[test]
    fn bands_follow_min_iter_or_max_iter() {
        assert_eq!(&bands(&hb(Some(3), None, None, 3.0))[..4], &[3, 9, 27, 81]);
        assert_eq!(bands(&hb(None, Some(27), Some(2), 3.0)), vec![3, 9]);
        assert_eq!(bands(&hb(None, Some(5), Some(2), 2.0)), vec![1, 2]);
        // max_iter / eta^k below one ends the list.
        assert_eq!(bands(&hb(None, Some(4), Some(5), 2.0)), vec![1, 2]);
    }

    #[test]
    fn runs_below_the_top_third_at_a_band_stop_and_no_others() {
        // Band 2 with eta 3: of the runs that reached two values, the better third passes.
        let cfg = hb(Some(2), None, None, 3.0);
        let curves = vec![
            curve(false, &[10.0, 1.0, 0.5]),
            curve(false, &[10.0, 2.0, 1.0]),
            curve(true, &[10.0, 3.0]),
            curve(true, &[10.0, 9.0, 8.0]),
            curve(true, &[10.0]),
            curve(true, &[10.0, 1.5, 1.4]),
        ];
        let stops = decide(&cfg, Goal::Minimize, &curves);
        let stopped: Vec<usize> = stops.iter().map(|s| s.index).collect();
        // Values at band 2: 1, 2, 3, 9, 1.5 → sorted [1, 1.5, 2, 3, 9], threshold index 1 → 1.5.
        assert_eq!(stopped, vec![2, 3]);
        assert_eq!(stops[0].threshold, 1.5);
        assert_eq!(stops[0].band, 2);
    }

    #[test]
    fn maximize_flips_the_comparison() {
        let cfg = hb(Some(1), None, None, 2.0);
        let curves = vec![
            curve(true, &[0.9]),
            curve(true, &[0.1]),
            curve(false, &[0.8]),
            curve(false, &[0.7]),
        ];
        let stops = decide(&cfg, Goal::Maximize, &curves);
        assert_eq!(stops.iter().map(|s| s.index).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn strict_compares_the_value_at_the_band_not_the_best() {
        // The run was good early and is bad at the band: only strict mode stops it.
        let mut cfg = hb(Some(3), None, None, 2.0);
        let curves = vec![
            curve(false, &[5.0, 4.0, 1.0]),
            curve(false, &[5.0, 4.0, 2.0]),
            curve(true, &[0.5, 4.0, 6.0]),
        ];
        assert!(decide(&cfg, Goal::Minimize, &curves).is_empty());
        cfg.strict = true;
        let stops = decide(&cfg, Goal::Minimize, &curves);
        assert_eq!(stops.len(), 1);
        assert_eq!(stops[0].index, 2);
        assert_eq!(stops[0].value, 6.0);
    }

    #[test]
    fn runs_before_the_first_band_are_left_alone() {
        let cfg = hb(Some(5), None, None, 3.0);
        let curves = vec![curve(false, &[1.0; 10]), curve(true, &[100.0; 4])];
        assert!(decide(&cfg, Goal::Minimize, &curves).is_empty());
    }
}
