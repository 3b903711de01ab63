//! Deleters of one reference take turns.
//!
//! Stores offer no delete-if-unchanged, so a deleter checks that `reference.bin` still has
//! the content it retired and then deletes it, one round trip later. Were two deleters
//! allowed at once, the second could delete the reference and a new first upload make
//! another one inside that round trip, and the first deleter would then delete the new
//! reference, of which no retired copy exists (docs/format.md, "Lifecycle", rule 4).
//!
//! So a deleter announces itself first: it writes a lease object of its own under
//! `.deltaglider/deleting/<reference key>/`, lists the leases there, and goes on only if no
//! other live lease is listed. Two that announce at once each list after their own write, so
//! at least one of them sees the other and steps back; both may step back, and then try
//! again after a random pause. No conditional request is needed, only listings that show
//! what was written before them (S3 and the local store both do).
//!
//! A deleter that dies leaves its lease behind: a lease whose store time is `LEASE_TTL`
//! older than the newest one is dead, ignored and removed by whoever takes the lease next
//! (a deleter, or `purge`, which takes it for every reference with leftovers). A deleter
//! that finds it has held its lease for half of that (paused, stalled on the network, its
//! machine suspended) gives up before it deletes anything, so a lease that others treat as
//! dead never covers a delete.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;

use super::Engine;
use crate::deltaspace;
use crate::error::Result;
use crate::storage::{ListRequest, ObjectStoreExt, PutOptions, PutSource};

/// Where deleters' leases live: `.deltaglider/deleting/<reference key>/<random>`.
pub const LEASE_PREFIX: &str = ".deltaglider/deleting/";

/// How long a lease counts as held, by the store's clock. Far longer than a deleter's work
/// (a few round trips and one server-side copy).
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(600);

/// Tries to take a contended lease before leaving the reference to the other deleter (or
/// to `purge`): the pauses between them add up to about three seconds.
const ATTEMPTS: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// The right to delete one reference, held until released.
#[derive(Debug)]
pub(crate) struct DeleterLease {
    key: String,
    taken: Instant,
    /// The wall clock too: the monotonic clock stops while the machine is suspended.
    taken_wall: SystemTime,
}

impl DeleterLease {
    fn new(key: String) -> DeleterLease {
        DeleterLease {
            key,
            taken: Instant::now(),
            taken_wall: SystemTime::now(),
        }
    }

    /// True while the lease is young enough that no other deleter can take it for dead,
    /// by whichever clock says more time has passed.
    pub(crate) fn fresh(&self) -> bool {
        let wall = self.taken_wall.elapsed().unwrap_or_default();
        self.taken.elapsed().max(wall) < LEASE_TTL / 2
    }
}

/// The listing prefix of `ref_key`'s leases.
fn lease_prefix(ref_key: &str) -> String {
    format!("{LEASE_PREFIX}{ref_key}/")
}

/// The reference key a lease's key names.
pub(crate) fn parse_lease_key(key: &str) -> Option<&str> {
    let (ref_key, _) = key.strip_prefix(LEASE_PREFIX)?.rsplit_once('/')?;
    (deltaspace::is_reference_name(deltaspace::file_name(ref_key))).then_some(ref_key)
}

/// True if a lease written at `other` still counts as held, judged against `newest`, the
/// store time of the newest lease seen (so only the store's clock matters). A lease without
/// a time counts as held: stepping back is always safe.
fn held(other: Option<DateTime<Utc>>, newest: DateTime<Utc>) -> bool {
    other.is_none_or(|t| (newest - t).to_std().unwrap_or_default() < LEASE_TTL)
}

impl Engine {
    /// The lease to delete `ref_key`, or `None` when other deleters held it through every
    /// attempt (the reference is then theirs to remove, or `purge`'s).
    pub(crate) async fn take_deleter_lease(
        &self,
        bucket: &str,
        ref_key: &str,
    ) -> Result<Option<DeleterLease>> {
        let prefix = lease_prefix(ref_key);
        let mut pause = FIRST_PAUSE;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let jitter = rand::random_range(0.5..1.5);
                tokio::time::sleep(pause.mul_f64(jitter)).await;
                pause *= 2;
            }
            let lease = DeleterLease::new(format!("{prefix}{:016x}", rand::random::<u64>()));
            let key = &lease.key;
            self.store
                .put_object(
                    bucket,
                    key,
                    PutSource::Bytes(Bytes::new()),
                    PutOptions::default(),
                )
                .await?;
            let leases = self.leases(bucket, &prefix).await?;
            let newest = leases.iter().filter_map(|(_, t)| *t).max();
            let mine_listed = leases.iter().any(|(k, _)| k == key);
            let mut contended = !mine_listed;
            for (other, time) in leases.iter().filter(|(k, _)| k != key) {
                match newest {
                    Some(newest) if !held(*time, newest) => {
                        tracing::info!(lease = %other, "removing a dead deleter's lease");
                        if let Err(e) = self.store.delete_object(bucket, other).await {
                            tracing::warn!(lease = %other, "{}", crate::error::chain(&e));
                        }
                    }
                    _ => contended = true,
                }
            }
            if !contended {
                return Ok(Some(lease));
            }
            self.store.delete_object(bucket, key).await?;
        }
        Ok(None)
    }

    /// Gives the lease up. A lease that cannot be removed is logged: other deleters wait
    /// out its `LEASE_TTL`, and nothing is lost meanwhile.
    pub(crate) async fn release_deleter_lease(&self, bucket: &str, lease: DeleterLease) {
        if let Err(e) = self.store.delete_object(bucket, &lease.key).await {
            tracing::warn!(lease = %lease.key, "cannot remove a deleter's lease: {}", crate::error::chain(&e));
        }
    }

    /// `(key, store time)` of the leases directly under `prefix`.
    async fn leases(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Option<DateTime<Utc>>)>> {
        let request = ListRequest {
            prefix: prefix.to_string(),
            // a deeper prefix is another reference's (`a/reference.bin/reference.bin`)
            delimiter: Some("/".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut pages = self.store.list_pages(bucket, request);
        while let Some(page) = pages.try_next().await? {
            out.extend(page.objects.into_iter().map(|o| (o.key, o.last_modified)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_held_until_its_ttl_has_passed_by_the_store_clock() {
        let newest = Utc::now();
        let ttl = chrono::Duration::from_std(LEASE_TTL).unwrap();
        assert!(held(Some(newest), newest));
        assert!(held(
            Some(newest - ttl + chrono::Duration::seconds(1)),
            newest
        ));
        assert!(!held(Some(newest - ttl), newest));
        // a lease newer than the newest seen (clock noise) is held
        assert!(held(Some(newest + chrono::Duration::seconds(5)), newest));
        assert!(held(None, newest));
    }

    #[test]
    fn leases_of_nested_references_do_not_share_a_listing() {
        assert_eq!(
            lease_prefix("a/reference.bin"),
            ".deltaglider/deleting/a/reference.bin/"
        );
        assert_eq!(
            lease_prefix("reference.bin"),
            ".deltaglider/deleting/reference.bin/"
        );
    }
}
