//! What a run tells its listeners. The run never prints: it emits these,
//! and `report` turns them into console lines and the JSON record.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::edge::cdn::CdnError;
use crate::edge::store::{DeleteFailure, StoreError};
use crate::model::{ETag, Key, Location, RemoteObject};
use crate::plan::verify::{Problem, Verification};
use crate::plan::{Plan, PlannedUpload, Write};

use super::error::PipeError;

/// What the execution did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub uploaded: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    pub deleted: usize,
    /// Deletes under way when a stop came, whose fate is unknown.
    pub deletes_in_doubt: usize,
    /// Objects whose headers were fixed in place.
    pub copied: usize,
    /// The ETag S3 gave each uploaded or copied key.
    pub etags: HashMap<Key, ETag>,
    /// When the last uploads and copies ended (deletes stamp nothing).
    pub last_writes: LastWrites,
}

/// When a deploy's last uploads and copies ended, in the order they ended:
/// enough of them to count those S3 may have stamped in the second its
/// manifest would be stamped in if written now (`run::manifest::save`).
#[derive(Debug, Default)]
pub struct LastWrites {
    ends: VecDeque<Instant>,
}

impl LastWrites {
    /// How long an end is kept after a later one: longer than a clock step
    /// of S3 (a second) and the margin for clocks.
    const KEPT: Duration = Duration::from_millis(2_500);

    /// A write that ended `at`, no earlier than the one recorded before.
    pub fn record(&mut self, at: Instant) {
        while self
            .ends
            .front()
            .is_some_and(|first| at.saturating_duration_since(*first) > Self::KEPT)
        {
            self.ends.pop_front();
        }
        self.ends.push_back(at);
    }

    /// When the last write ended; `None`: there was none.
    pub fn last(&self) -> Option<Instant> {
        self.ends.back().copied()
    }

    /// How many writes ended at `from` or later (within [`Self::KEPT`] of
    /// the last).
    pub fn since(&self, from: Instant) -> usize {
        self.ends
            .iter()
            .rev()
            .take_while(|end| **end >= from)
            .count()
    }
}

/// What was asked of one distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub distribution_id: String,
    pub domain_name: String,
    pub ids: Vec<String>,
    pub paths: Vec<String>,
    pub completed: bool,
}

#[derive(Debug)]
pub enum Event<'a> {
    /// A phase of the run ended after `took`.
    Phase {
        name: &'static str,
        took: Duration,
    },
    Deploying {
        local_path: &'a Path,
        destination: &'a str,
        dry_run: bool,
    },
    /// What the deploy covers, after filters and `ignore` rules.
    Scanned {
        local: usize,
        remote: usize,
        excluded: usize,
        /// Symbolic links not followed (`--no-follow-symlinks`).
        links_skipped: usize,
    },
    /// The incomplete multipart uploads under the prefix older than
    /// `max_age` (`stale`), and how many of them were aborted.
    Swept {
        stale: usize,
        aborted: usize,
        max_age: Duration,
        dry_run: bool,
    },
    /// Listing or aborting incomplete uploads was refused; the deploy goes on.
    SweepFailed {
        error: &'a StoreError,
    },
    /// The deploy manifest could not be read: every key falls back to HeadObject.
    ManifestUnreadable {
        at: &'a Location,
    },
    /// The deploy manifest names keys in clear (version 1): this deploy
    /// rewrites it in the private form.
    ManifestInClearText {
        at: &'a Location,
    },
    /// The manifest's LastModified is `seconds` after the time it records
    /// it was written: a copy put back later, or this machine's clock was
    /// that far behind S3's. Only the objects older than its record are
    /// trusted for their headers.
    ManifestPutBack {
        at: &'a Location,
        seconds: i64,
    },
    /// The manifest records a time `seconds` after its own LastModified:
    /// the clock that wrote it ran ahead of S3's, so it vouches for no
    /// object's headers.
    ManifestWrittenAhead {
        at: &'a Location,
        seconds: i64,
    },
    /// The deploy manifest was written for another destination (a
    /// MANIFEST_KEY shared by two deploys): this deploy replaces it.
    ManifestOfAnotherDestination {
        at: &'a Location,
    },
    /// A state object under the prefix that this deploy does not use (an
    /// earlier MANIFEST_KEY, or MANIFEST off): left as it is.
    FormerManifest {
        key: &'a Key,
    },
    /// A local file named like a state object: not uploaded.
    ReservedName {
        relative: &'a str,
    },
    /// Every decision, before any write.
    Planned {
        plan: &'a Plan,
        /// The listing the plan was made against (the deploy's scope).
        remote: &'a [RemoteObject],
        destination: &'a str,
        excluded: usize,
        dry_run: bool,
    },
    Written {
        planned: &'a PlannedUpload,
        write: Write,
        etag: &'a ETag,
        took: Duration,
    },
    WriteFailed {
        planned: &'a PlannedUpload,
        error: &'a StoreError,
    },
    /// Uploads done so far, every [`super::execute::PROGRESS_EVERY`].
    Progress {
        files: usize,
        total_files: usize,
        bytes: u64,
        total_bytes: u64,
    },
    Deleted {
        key: &'a Key,
    },
    DeleteFailed {
        failure: &'a DeleteFailure,
    },
    ManifestWritten {
        at: &'a Location,
        entries: usize,
    },
    /// The deploy is over and succeeded (or, dry, was only planned).
    Deployed {
        plan: &'a Plan,
        done: &'a Outcome,
        dry_run: bool,
        took: Duration,
    },
    /// The deploy changed nothing a cache could hold.
    NothingToInvalidate,
    Invalidating {
        distribution_id: &'a str,
        domain_name: &'a str,
        paths: &'a [String],
        /// Why the paths may not be what the user expects.
        warnings: &'a [String],
        dry_run: bool,
    },
    InvalidationRetry {
        error: &'a CdnError,
        delay: Duration,
    },
    InvalidationCreated {
        distribution_id: &'a str,
        invalidation_id: &'a str,
    },
    InvalidationPending {
        distribution_id: &'a str,
        invalidation_id: &'a str,
        waited: Duration,
    },
    InvalidationCompleted {
        distribution_id: &'a str,
        invalidation_id: &'a str,
        waited: Duration,
    },
    Invalidated(&'a Invalidation),
    /// A dry run deploys nothing, so VERIFY checks nothing.
    NothingToVerify,
    /// The verification starts: `checks` requests below `url`, for the
    /// `candidates` keys the deploy changed.
    Verifying {
        url: &'a str,
        checks: usize,
        candidates: usize,
        /// Past `plan::verify::MAX_CHECKS`: entry documents and a sample.
        sampled: bool,
    },
    /// An answer that may be stale is asked for again after `delay`.
    Rechecking {
        url: &'a str,
        problems: &'a [Problem],
        delay: Duration,
    },
    Verified(&'a Verification),
    /// The run is over: the last event, on every path.
    Finished(&'a Result<(), PipeError>),
}

/// A listener of a run's events. `Sync` because uploads run concurrently.
pub trait Sink: Sync {
    fn event(&self, event: &Event<'_>);
}

/// Several listeners as one: each hears every event, in the order given.
pub struct Listeners<'a>(pub Vec<&'a dyn Sink>);

impl Sink for Listeners<'_> {
    fn event(&self, event: &Event<'_>) {
        for sink in &self.0 {
            sink.event(event);
        }
    }
}

/// Runs `work`, then tells `sink` how long the phase took.
pub async fn timed<T, E: Sink>(sink: &E, name: &'static str, work: impl Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = work.await;
    sink.event(&Event::Phase {
        name,
        took: started.elapsed(),
    });
    out
}
