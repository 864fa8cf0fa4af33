//! The metric curves of sweep runs that Hyperband has read, kept so unchanged runs are not
//! read again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
