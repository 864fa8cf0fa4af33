//! The in-memory budget of request body bytes shared by all requests; holds nothing that
//! needs the request state, so the state can hold the budget.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Body bytes held in memory by all requests together.
#[derive(Debug)]
pub struct BodyBudget {
    used: AtomicUsize,
    total: usize,
}

impl BodyBudget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> BodyBudget {
        BodyBudget {
            used: AtomicUsize::new(0),
            total,
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&after| after <= self.total)
            })
            .is_ok()
    }

    pub(super) fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}
