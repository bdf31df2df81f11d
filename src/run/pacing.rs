//! How long the run waits between tries and polls: CloudFront busy, an
//! invalidation in progress, a stale answer of the site. Tests shorten it.

use std::time::Duration;

/// How long to wait between tries and polls; tests shorten it.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// CloudFront busy: the first wait, doubled up to `max_retry`.
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// Between two looks at an invalidation in progress.
    pub poll: Duration,
    /// Before asking the site again for a stale answer, doubled each time.
    pub recheck: Duration,
}

pub const PACING: Pacing = Pacing {
    first_retry: Duration::from_secs(2),
    max_retry: Duration::from_secs(60),
    poll: Duration::from_secs(10),
    recheck: Duration::from_secs(1),
};

#[cfg(test)]
pub const FAST: Pacing = Pacing {
    first_retry: Duration::from_millis(1),
    max_retry: Duration::from_millis(4),
    poll: Duration::from_millis(1),
    recheck: Duration::from_millis(1),
};
