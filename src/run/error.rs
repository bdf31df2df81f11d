//! The one error a run can end with, and what to tell the user about it.

use std::fmt;

use crate::config::ValidationErrors;
use crate::edge::auth::AuthError;
use crate::edge::store::StoreError;
use crate::model::{ScanCause, ScanProblem};
use crate::plan::guard::DeleteRefused;

use crate::edge::cdn::CdnError;
use crate::edge::store::DeleteFailure;
use crate::stop::Signal;

use super::compress::CompressError;
use super::evidence::CompareError;

/// Where a run was when a signal stopped it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub signal: Signal,
    /// Uploads (and header fixes) done, and planned; `None` before the plan.
    pub uploads: Option<(usize, usize)>,
    pub deleted: usize,
    /// Deletes under way when the stop came: they may have happened.
    pub deletes_in_doubt: usize,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}", self.signal.name())?;
        match self.uploads {
            Some((done, planned)) => write!(f, " after {done} of {planned} uploads")?,
            None => write!(f, " before any upload")?,
        }
        match (self.deleted, self.deletes_in_doubt) {
            (0, 0) => write!(f, "; nothing deleted"),
            (n, 0) => write!(f, "; {n} deleted"),
            (n, m) => write!(f, "; {n} deleted, {m} more under way when stopped"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{0}")]
    Stopped(Stopped),
    #[error("{} of {attempted} uploads failed; {} deletes skipped so nothing is lost", failed.len(), skipped_deletes)]
    Uploads {
        failed: Vec<StoreError>,
        attempted: usize,
        skipped_deletes: usize,
    },
    #[error("{} of {attempted} deletes failed", failed.len())]
    Deletes {
        failed: Vec<DeleteFailure>,
        attempted: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InvalidateError {
    #[error(transparent)]
    Cdn(#[from] CdnError),
    #[error(
        "invalidation {invalidation_id} on {distribution_id} is still in progress after {waited} s \
         (WAIT_TIMEOUT): it carries on in CloudFront"
    )]
    Timeout {
        distribution_id: String,
        invalidation_id: String,
        waited: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Before any write: the site's URL cannot be worked out.
    #[error("VERIFY cannot check this deploy, so nothing was deployed: {0}")]
    Target(String),
    #[error("VERIFY needs the distribution's domain, so nothing was deployed: {0}")]
    Distribution(CdnError),
    #[error(
        "Verification failed: {failed} of {checked} paths are not served as deployed. \
         The deploy itself succeeded and is not undone"
    )]
    Mismatches {
        failed: usize,
        checked: usize,
        /// Each kind of problem found (`plan::verify::KINDS`).
        kinds: Vec<&'static str>,
    },
}

/// Every path in LOCAL_PATH that cannot be deployed (and is not excluded),
/// found before any write; printed like validation errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanErrors(pub Vec<ScanProblem>);

impl fmt::Display for ScanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Scan errors (nothing was written):")?;
        writeln!(f, "LOCAL_PATH:")?;
        for problem in &self.0 {
            writeln!(f, "- {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScanErrors {}

impl ScanErrors {
    /// What to do, once per kind of problem present, then how to leave a
    /// path out.
    fn hints(&self) -> Vec<String> {
        let mut kinds: Vec<&ScanCause> = Vec::new();
        for p in &self.0 {
            if !kinds.iter().any(|k| k.kind() == p.cause.kind()) {
                kinds.push(&p.cause);
            }
        }
        let mut lines: Vec<String> = kinds
            .into_iter()
            .map(|cause| format!("Hint: {}: {}", cause.kind(), remedy(cause)))
            .collect();
        lines.push(
            "Leave a path out with --exclude \"<path>\" in EXTRA_ARGS (a folder: \"<folder>/*\") \
             or a rule with `ignore: true`; the problems of excluded paths are not reported."
                .into(),
        );
        lines
    }
}

fn remedy(cause: &ScanCause) -> &'static str {
    match cause {
        ScanCause::BrokenLink { .. } => {
            "make the build create its target, remove the link, or leave it out; \
             --no-follow-symlinks in EXTRA_ARGS skips every symbolic link, dangling ones too"
        }
        ScanCause::LinkLoop { .. } => {
            "point the link elsewhere, remove it, or leave it out; \
             --no-follow-symlinks in EXTRA_ARGS skips every symbolic link"
        }
        ScanCause::UnreadableFile(_) | ScanCause::UnreadableFolder(_) => {
            "give the pipe read access (in Bitbucket it runs as root; with docker run --user, \
             as that user), or leave it out"
        }
        ScanCause::NotAFile(_) => "remove it from the build, or leave it out",
        ScanCause::NotUtf8 | ScanCause::ControlCharacter(_) => "rename it, or leave it out",
        ScanCause::BlankKey => {
            "rename it, deploy under a prefix (S3_BUCKET=bucket/prefix), or leave it out"
        }
        ScanCause::KeyTooLong { .. } => "shorten the path or the prefix, or leave it out",
        ScanCause::SameKey { .. } => "keep one of the names, or leave them out",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    #[error("{0}")]
    Validation(#[from] ValidationErrors),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Scan(#[from] ScanErrors),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Compare(#[from] CompareError),
    #[error(transparent)]
    Compress(#[from] CompressError),
    #[error("Deployment failed: {0}")]
    Deploy(DeployError),
    #[error("{0}")]
    Stopped(Stopped),
    #[error("Delete guard: {0}")]
    DeleteRefused(#[from] DeleteRefused),
    #[error("{}CloudFront invalidation failed: {source}", if *deployed { "The files are deployed but not invalidated. " } else { "" })]
    Invalidate {
        deployed: bool,
        source: InvalidateError,
    },
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

impl From<DeployError> for PipeError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Stopped(s) => PipeError::Stopped(s),
            other => PipeError::Deploy(other),
        }
    }
}

impl PipeError {
    /// The signal that stopped the run, if one did.
    pub fn signal(&self) -> Option<Signal> {
        match self {
            PipeError::Stopped(s) => Some(s.signal),
            _ => None,
        }
    }

    /// Lines printed under the error: each failure with its hint.
    pub fn details(&self) -> Vec<String> {
        let hint = |e: &StoreError| e.hint().map(|h| format!("Hint: {h}"));
        match self {
            PipeError::Store(e) | PipeError::Compare(CompareError::Store(e)) => {
                hint(e).into_iter().collect()
            }
            PipeError::Auth(e) => e.hint().into_iter().map(|h| format!("Hint: {h}")).collect(),
            PipeError::Deploy(DeployError::Uploads { failed, .. }) => {
                let mut lines: Vec<String> = failed.iter().map(|e| format!("- {e}")).collect();
                if let Some(h) = failed.iter().find_map(hint) {
                    lines.push(h);
                }
                lines.push("Nothing was deleted. Run the deploy again: it uploads only what is still missing.".into());
                lines
            }
            PipeError::Deploy(DeployError::Deletes { failed, .. }) => failed
                .iter()
                .map(|f| format!("- {}: {}: {}", f.key, f.code, f.message))
                .collect(),
            PipeError::Invalidate {
                source: InvalidateError::Cdn(e),
                ..
            } => e.hint().map(|h| format!("Hint: {h}")).into_iter().collect(),
            PipeError::Stopped(_) | PipeError::Deploy(DeployError::Stopped(_)) => vec![
                "Any multipart upload in flight was aborted, and no later step was started. Run \
                 the deploy again: it uploads only what is still missing."
                    .into(),
            ],
            PipeError::Scan(e) => e.hints(),
            PipeError::Verify(VerifyError::Mismatches { kinds, .. }) => kinds
                .iter()
                .map(|kind| format!("Hint: {kind}: {}", crate::plan::verify::hint(kind)))
                .collect(),
            PipeError::Verify(VerifyError::Distribution(e)) => {
                e.hint().map(|h| format!("Hint: {h}")).into_iter().collect()
            }
            PipeError::Validation(_)
            | PipeError::Compare(_)
            | PipeError::Compress(_)
            | PipeError::DeleteRefused(_)
            | PipeError::Invalidate { .. }
            | PipeError::Verify(VerifyError::Target(_)) => Vec::new(),
        }
    }
}
