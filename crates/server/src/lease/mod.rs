//! Leases: which replica runs each singleton background job.
//!
//! Several server processes may share one database. The heartbeat reaper and the sweep
//! scheduler must run on exactly one of them at a time, so each job takes a named lease in the
//! `leases` table before it does its work, renews it on every tick, and gives it back on
//! shutdown. A replica that dies simply stops renewing; once the lease has expired another
//! replica takes it over on its next tick. Acquisition is one conditional upsert, atomic on
//! both backends, so two replicas can never both believe they hold a lease that has not
//! expired (given clocks in step to well under a lease's lifetime).

mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::ApiResult;
use crate::store::{Store, now_us};

/// A named lease this replica may hold.
#[derive(Debug)]
pub struct Lease {
    name: &'static str,
    holder: String,
    ttl: Duration,
    held: AtomicBool,
}

impl Lease {
    /// A lease called `name`, taken on behalf of `holder` for `ttl` at a time.
    pub fn new(name: &'static str, holder: &str, ttl: Duration) -> Lease {
        Lease {
            name,
            holder: holder.to_string(),
            ttl,
            held: AtomicBool::new(false),
        }
    }

    /// The job this lease guards.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether this replica held the lease at its last attempt.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes the lease if it is free or expired, or renews it if this replica holds it.
    /// Returns whether this replica now holds it. Database errors count as "not held": a
    /// replica that cannot reach the database must not run jobs that write to it.
    pub async fn acquire(&self, store: &Store) -> bool {
        let held = match self.try_acquire(store).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, lease = self.name, "cannot take or renew lease");
                false
            }
        };
        let was = self.held.swap(held, Ordering::Relaxed);
        if held && !was {
            tracing::info!(job = self.name, replica = %self.holder, "this replica now runs the job");
        } else if was && !held {
            tracing::warn!(job = self.name, replica = %self.holder, "lost the lease: another replica runs the job now");
        }
        held
    }

    async fn try_acquire(&self, store: &Store) -> ApiResult<bool> {
        let now = now_us();
        let expires = now.saturating_add(self.ttl.as_micros() as i64);
        store::take(store, self.name, &self.holder, now, expires).await
    }

    /// Gives the lease back (on shutdown), so another replica need not wait for it to expire.
    pub async fn release(&self, store: &Store) {
        if !self.held.swap(false, Ordering::Relaxed) {
            return;
        }
        let res = store::release(store, self.name, &self.holder).await;
        if let Err(e) = res {
            tracing::warn!(error = %e, lease = self.name, "cannot release lease");
        }
    }
}

/// The singleton jobs' leases of one replica.
#[derive(Debug)]
pub struct Singletons {
    /// This replica's name in the `leases` table: host, process id and a random suffix.
    pub replica: String,
    /// The heartbeat reaper, token pruning and audit retention.
    pub reaper: Lease,
    /// The sweep scheduler (Hyperband checks of runs started by hand, finishing sweeps).
    pub sweep_scheduler: Lease,
}

impl Singletons {
    /// Leases that last three job periods, so one slow or missed tick does not hand a job
    /// to another replica.
    pub fn new(period: Duration) -> Singletons {
        let replica = format!(
            "{}/{}/{}",
            host_name(),
            std::process::id(),
            crate::auth::keys::random_hex(3)
        );
        let ttl = period.saturating_mul(3).max(Duration::from_millis(500));
        Singletons {
            reaper: Lease::new("reaper", &replica, ttl),
            sweep_scheduler: Lease::new("sweep-scheduler", &replica, ttl),
            replica,
        }
    }

    /// Every lease, for reporting.
    pub fn all(&self) -> [&Lease; 2] {
        [&self.reaper, &self.sweep_scheduler]
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_until_expiry_or_release() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        let ttl = Duration::from_millis(300);
        let a = Lease::new("reaper", "a", ttl);
        let b = Lease::new("reaper", "b", ttl);
        let other_job = Lease::new("sweep-scheduler", "b", ttl);
        assert!(a.acquire(&store).await);
        assert!(!b.acquire(&store).await, "held by a");
        assert!(other_job.acquire(&store).await, "leases are per job");
        assert!(a.acquire(&store).await, "a renews");
        assert!(a.is_held() && !b.is_held());

        // a stops renewing: b waits for the lease to lapse, then takes it.
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        assert!(b.acquire(&store).await);
        assert!(!a.acquire(&store).await, "a lost it");
        assert!(!a.is_held());

        // Released on shutdown: a gets it at once.
        b.release(&store).await;
        assert!(a.acquire(&store).await);
        store.close().await;
    }
}
