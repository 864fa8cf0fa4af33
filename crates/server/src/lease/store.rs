//! Storage of leases: owns the `leases` table, and is the only place the leases' SQL lives.

use crate::error::ApiResult;
use crate::on_backend;
use crate::store::Store;

/// Takes the lease `name` for `holder` until `expires` if it is free, expired or already
/// this holder's, in one conditional upsert; true when `holder` now holds it.
pub(super) async fn take(
    store: &Store,
    name: &str,
    holder: &str,
    now: i64,
    expires: i64,
) -> ApiResult<bool> {
    const INSERT_LEASES: &str = "INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET
                     acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END,
                     holder = excluded.holder,
                     expires_at = excluded.expires_at
                 WHERE leases.holder = excluded.holder OR leases.expires_at < excluded.acquired_at";
    let res = on_backend!(store, write, |pool| {
        sqlx::query(INSERT_LEASES)
            .bind(name)
            .bind(holder)
            .bind(now)
            .bind(expires)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(res == 1)
}

/// Deletes the lease `name` if `holder` holds it.
pub(super) async fn release(store: &Store, name: &str, holder: &str) -> ApiResult<()> {
    on_backend!(store, write, |pool| {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(pool)
            .await?;
    });
    Ok(())
}
