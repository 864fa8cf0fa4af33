//! What the sweep controller keeps in memory so it does not read again what has not changed:
//! the metric curves Hyperband has read, and every sweep's trials as last read.
//!
//! Both are only shortcuts. The trial cache is checked against the database on every read (a
//! one-row fingerprint of the sweep's trials), so changes made through another replica, or
//! any path the controller does not see, are never missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::store::TrialRow;

/// Most curves kept; past this the cache starts over (it only saves reads).
const CURVE_CACHE_RUNS: usize = 100_000;

/// The metric values of sweep runs by run, with the version (count, last value) read.
#[derive(Debug, Default)]
pub struct CurveCache(Mutex<HashMap<i64, CachedCurve>>);

/// A run's metric count and last value's bits: its curve changes only when these do.
type CurveVersion = (i64, Option<u64>);
type CachedCurve = (CurveVersion, Arc<Vec<f64>>);

impl CurveCache {
    pub(super) fn get(&self, run_pk: i64, version: CurveVersion) -> Option<Arc<Vec<f64>>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&run_pk)
            .filter(|(v, _)| *v == version)
            .map(|(_, c)| c.clone())
    }

    pub(super) fn put(&self, run_pk: i64, version: CurveVersion, curve: Arc<Vec<f64>>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CURVE_CACHE_RUNS {
            map.clear();
        }
        map.insert(run_pk, (version, curve));
    }
}

/// A sweep's trials in number order, shared without copying.
pub(super) type Trials = Arc<Vec<Arc<TrialRow>>>;

/// What changes when any trial's outcome can have changed: counts and sums over the trials
/// and their runs. Every write that changes a run's state or metric summary moves the run's
/// `updated_at`; stop reasons and retry flags are trial columns, summed by trial number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub(super) struct Fingerprint {
    trials: i64,
    last_number: i64,
    runs: i64,
    run_versions: i64,
    stops: i64,
    retries: i64,
}

/// Run update times are summed modulo this prime, so the sum cannot overflow.
const VERSION_MODULUS: i64 = 1_000_000_007;

/// The fingerprint as the database computes it ($1: the sweep).
pub(super) const FINGERPRINT_SELECT: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS trials, \
     CAST(COALESCE(MAX(t.number), 0) AS BIGINT) AS last_number, \
     CAST(COUNT(r.pk) AS BIGINT) AS runs, \
     CAST(COALESCE(SUM(r.updated_at % 1000000007), 0) AS BIGINT) AS run_versions, \
     CAST(COALESCE(SUM(CASE WHEN t.stop_reason IS NULL THEN 0 ELSE t.number END), 0) AS BIGINT) AS stops, \
     CAST(COALESCE(SUM(CASE WHEN t.retry_requested THEN t.number ELSE 0 END), 0) AS BIGINT) AS retries \
     FROM sweep_trials t LEFT JOIN runs r ON r.id = t.run_id WHERE t.sweep_pk = $1";

impl Fingerprint {
    /// The fingerprint of rows read, computed as `FINGERPRINT_SELECT` does.
    pub(super) fn of<'a>(rows: impl IntoIterator<Item = &'a Arc<TrialRow>>) -> Fingerprint {
        let mut f = Fingerprint::default();
        for t in rows {
            f.trials += 1;
            f.last_number = f.last_number.max(t.number);
            if let (Some(_), Some(at)) = (t.run_pk, t.run_updated_at) {
                f.runs += 1;
                f.run_versions += at % VERSION_MODULUS;
            }
            if t.stop_reason.is_some() {
                f.stops += t.number;
            }
            if t.retry_requested {
                f.retries += t.number;
            }
        }
        f
    }
}

/// Rows changed this long before the newest change seen are read again as well: a write's
/// time is taken before it commits, and replicas' clocks differ a little.
const CHANGE_MARGIN_US: i64 = 2_000_000;

/// Most trial rows kept over all sweeps; past this the cache starts over.
const TRIAL_CACHE_ROWS: usize = 2_000_000;

/// One sweep's trials as last read.
#[derive(Debug)]
pub(super) struct CachedTrials {
    metric: String,
    rows: Trials,
    fingerprint: Fingerprint,
}

impl CachedTrials {
    /// The highest trial number held: newer trials are read in full.
    pub(super) fn last_number(&self) -> i64 {
        self.fingerprint.last_number
    }

    /// Trials whose run changed at or after this time (µs) are read again.
    pub(super) fn changed_since(&self) -> i64 {
        self.rows
            .iter()
            .filter_map(|t| t.run_updated_at)
            .max()
            .map_or(i64::MIN, |newest| newest - CHANGE_MARGIN_US)
    }
}

/// What the cache knows of a sweep's trials, given the database's fingerprint.
pub(super) enum Lookup {
    /// Nothing changed: these are the trials.
    Fresh(Trials),
    /// Something changed since these were read.
    Stale(Arc<CachedTrials>),
    /// Never read (or read for another metric).
    Missing,
}

/// Every sweep's trials as last read, by sweep pk.
#[derive(Debug, Default)]
pub struct TrialCache(Mutex<HashMap<i64, Arc<CachedTrials>>>);

impl TrialCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<CachedTrials>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn lookup(&self, sweep_pk: i64, metric: &str, now: &Fingerprint) -> Lookup {
        match self.map().get(&sweep_pk) {
            Some(c) if c.metric != metric => Lookup::Missing,
            Some(c) if c.fingerprint == *now => Lookup::Fresh(c.rows.clone()),
            Some(c) => Lookup::Stale(c.clone()),
            None => Lookup::Missing,
        }
    }

    /// `old` with the rows read again since (`changed`, in number order), kept and returned
    /// when the result has the database's fingerprint `now`; `None` when it does not (a run
    /// was deleted, or a change was older than the margin), and the trials must be read in
    /// full.
    pub(super) fn merge(
        &self,
        sweep_pk: i64,
        old: &CachedTrials,
        changed: Vec<TrialRow>,
        now: &Fingerprint,
    ) -> Option<Trials> {
        let mut rows: Vec<Arc<TrialRow>> = old.rows.as_ref().clone();
        for t in changed {
            match rows.binary_search_by_key(&t.number, |r| r.number) {
                Ok(i) => rows[i] = Arc::new(t),
                Err(i) if i == rows.len() => rows.push(Arc::new(t)),
                // A trial number appearing between held ones: never written that way.
                Err(_) => return None,
            }
        }
        (Fingerprint::of(&rows) == *now).then(|| self.keep(sweep_pk, &old.metric, rows))
    }

    /// Keeps a full read of a sweep's trials (in number order).
    pub(super) fn keep(&self, sweep_pk: i64, metric: &str, rows: Vec<Arc<TrialRow>>) -> Trials {
        let fingerprint = Fingerprint::of(&rows);
        let rows: Trials = Arc::new(rows);
        let mut map = self.map();
        let held: usize = map.values().map(|c| c.rows.len()).sum();
        if held + rows.len() > TRIAL_CACHE_ROWS {
            map.clear();
        }
        map.insert(
            sweep_pk,
            Arc::new(CachedTrials {
                metric: metric.to_string(),
                rows: rows.clone(),
                fingerprint,
            }),
        );
        rows
    }

    /// Drops a deleted sweep's trials.
    pub(super) fn forget(&self, sweep_pk: i64) {
        self.map().remove(&sweep_pk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trial `number`, its run last changed at `run_at` (no run when `None`).
    fn row(number: i64, run_at: Option<i64>) -> TrialRow {
        TrialRow {
            pk: number,
            number,
            run_id: wanllmdb_api_types::RunId::from_number(number as u64),
            params: "{}".into(),
            stop_reason: None,
            retry_requested: false,
            retry_of: None,
            created_at: 0,
            agent_id: None,
            run_pk: run_at.map(|_| number),
            run_state: run_at.map(|_| "running".into()),
            iterations: None,
            last_value: None,
            last_nan: None,
            set_value: None,
            set_nan: None,
            is_set: None,
            run_updated_at: run_at,
            decoded: Default::default(),
        }
    }

    fn rows(list: &[(i64, Option<i64>)]) -> Vec<Arc<TrialRow>> {
        list.iter().map(|&(n, at)| Arc::new(row(n, at))).collect()
    }

    #[test]
    fn the_sql_fingerprint_uses_the_same_modulus() {
        assert!(FINGERPRINT_SELECT.contains(&format!("% {VERSION_MODULUS})")));
    }

    #[test]
    fn fingerprints_see_new_trials_run_changes_stops_and_retries() {
        let base = rows(&[(1, Some(10)), (2, None)]);
        let f = Fingerprint::of(&base);
        assert_eq!(
            (f.trials, f.last_number, f.runs, f.run_versions),
            (2, 2, 1, 10)
        );
        let mut changed = vec![
            rows(&[(1, Some(10)), (2, None), (3, None)]),
            rows(&[(1, Some(11)), (2, None)]),
            rows(&[(1, Some(10)), (2, Some(12))]),
            rows(&[(1, None), (2, None)]),
        ];
        let mut stopped = row(2, None);
        stopped.stop_reason = Some("early-terminated".into());
        changed.push(vec![base[0].clone(), Arc::new(stopped)]);
        // A retry queued on one trial and taken off another keeps the count, not the sum.
        let (mut a, mut b) = (row(1, Some(10)), row(2, None));
        a.retry_requested = true;
        let one = Fingerprint::of(&[Arc::new(a.clone()), Arc::new(b.clone())]);
        (a.retry_requested, b.retry_requested) = (false, true);
        assert_ne!(one, Fingerprint::of(&[Arc::new(a), Arc::new(b)]));
        for c in changed {
            assert_ne!(Fingerprint::of(&c), f, "{c:?}");
        }
    }

    #[test]
    fn changed_rows_replace_and_extend_what_is_held() {
        let cache = TrialCache::default();
        let held = cache.keep(
            7,
            "loss",
            rows(&[(1, Some(100)), (2, None), (3, Some(5_000_000))]),
        );
        let Lookup::Stale(old) = cache.lookup(7, "loss", &Fingerprint::default()) else {
            panic!("a different fingerprint must make the entry stale");
        };
        assert_eq!(old.last_number(), 3);
        assert_eq!(old.changed_since(), 5_000_000 - CHANGE_MARGIN_US);
        let changed = vec![row(2, Some(6_000_000)), row(4, None)];
        let want = rows(&[
            (1, Some(100)),
            (2, Some(6_000_000)),
            (3, Some(5_000_000)),
            (4, None),
        ]);
        let now = Fingerprint::of(&want);
        let merged = cache.merge(7, &old, changed, &now).unwrap();
        let numbers: Vec<(i64, Option<i64>)> = merged
            .iter()
            .map(|t| (t.number, t.run_updated_at))
            .collect();
        assert_eq!(
            numbers,
            [
                (1, Some(100)),
                (2, Some(6_000_000)),
                (3, Some(5_000_000)),
                (4, None)
            ]
        );
        // Unchanged rows are the same objects, not copies.
        assert!(Arc::ptr_eq(&merged[0], &held[0]));
        match cache.lookup(7, "loss", &now) {
            Lookup::Fresh(rows) => assert_eq!(rows.len(), 4),
            _ => panic!("the merged rows must be kept"),
        }
        // Another metric's summaries are not these.
        assert!(matches!(cache.lookup(7, "acc", &now), Lookup::Missing));
    }

    #[test]
    fn a_change_the_rows_do_not_explain_needs_a_full_read() {
        let cache = TrialCache::default();
        cache.keep(7, "loss", rows(&[(1, Some(100)), (2, Some(200))]));
        let Lookup::Stale(old) = cache.lookup(7, "loss", &Fingerprint::default()) else {
            panic!("stale expected");
        };
        // The database says run 2 is gone, but no changed row says so.
        let now = Fingerprint::of(&rows(&[(1, Some(100)), (2, None)]));
        assert!(cache.merge(7, &old, Vec::new(), &now).is_none());
        // A number between held ones.
        let gap = TrialCache::default();
        gap.keep(1, "loss", rows(&[(1, None), (3, None)]));
        let Lookup::Stale(old) = gap.lookup(1, "loss", &Fingerprint::default()) else {
            panic!("stale expected");
        };
        let now = Fingerprint::of(&rows(&[(1, None), (2, None), (3, None)]));
        assert!(gap.merge(1, &old, vec![row(2, None)], &now).is_none());
        gap.forget(1);
        assert!(matches!(gap.lookup(1, "loss", &now), Lookup::Missing));
    }
}
