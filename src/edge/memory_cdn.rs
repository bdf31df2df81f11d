//! In-memory CloudFront for unit tests, and a wrapper that answers "busy".

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::cdn::{Cdn, CdnError, Distribution, Origin};

pub struct MemoryCdn {
    id: String,
    distribution: Distribution,
    /// (paths, caller reference) of every invalidation created.
    created: Mutex<Vec<(Vec<String>, String)>>,
    stuck: AtomicBool,
}

impl MemoryCdn {
    pub fn with(id: &str, bucket: &str, origin_path: &str) -> Self {
        MemoryCdn {
            id: id.into(),
            distribution: Distribution {
                domain_name: format!("{}.cloudfront.net", id.to_lowercase()),
                origins: vec![Origin {
                    domain: format!("{bucket}.s3.amazonaws.com"),
                    path: origin_path.into(),
                }],
            },
            created: Mutex::default(),
            stuck: AtomicBool::new(false),
        }
    }

    pub fn created(&self) -> Vec<(Vec<String>, String)> {
        self.created.lock().unwrap().clone()
    }

    pub fn never_complete(&self) {
        self.stuck.store(true, Ordering::SeqCst);
    }

    fn check(&self, operation: &'static str, id: &str) -> Result<(), CdnError> {
        if id == self.id {
            return Ok(());
        }
        Err(CdnError {
            operation,
            distribution_id: id.into(),
            code: Some("NoSuchDistribution".into()),
            message: "The specified distribution does not exist.".into(),
        })
    }
}

impl Cdn for MemoryCdn {
    async fn distribution(&self, id: &str) -> Result<Distribution, CdnError> {
        self.check("GetDistribution", id)?;
        Ok(self.distribution.clone())
    }

    async fn create_invalidation(
        &self,
        id: &str,
        paths: &[String],
        reference: &str,
    ) -> Result<String, CdnError> {
        self.check("CreateInvalidation", id)?;
        let mut created = self.created.lock().unwrap();
        created.push((paths.to_vec(), reference.into()));
        Ok(format!("I{}", created.len()))
    }

    async fn invalidation_completed(
        &self,
        id: &str,
        _invalidation_id: &str,
    ) -> Result<bool, CdnError> {
        self.check("GetInvalidation", id)?;
        Ok(!self.stuck.load(Ordering::SeqCst))
    }
}

/// Answers TooManyInvalidationsInProgress to the first `busy` creations.
pub struct FaultyCdn<C> {
    pub inner: C,
    busy: usize,
    attempts: AtomicUsize,
}

impl<C> FaultyCdn<C> {
    pub fn busy(inner: C, busy: usize) -> Self {
        FaultyCdn {
            inner,
            busy,
            attempts: AtomicUsize::new(0),
        }
    }

    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}

impl<C: Cdn> Cdn for FaultyCdn<C> {
    async fn distribution(&self, id: &str) -> Result<Distribution, CdnError> {
        self.inner.distribution(id).await
    }

    async fn create_invalidation(
        &self,
        id: &str,
        paths: &[String],
        reference: &str,
    ) -> Result<String, CdnError> {
        if self.attempts.fetch_add(1, Ordering::SeqCst) < self.busy {
            return Err(CdnError {
                operation: "CreateInvalidation",
                distribution_id: id.into(),
                code: Some("TooManyInvalidationsInProgress".into()),
                message: "Processing your request will cause you to exceed the maximum number of in-progress wildcard invalidations.".into(),
            });
        }
        self.inner.create_invalidation(id, paths, reference).await
    }

    async fn invalidation_completed(
        &self,
        id: &str,
        invalidation_id: &str,
    ) -> Result<bool, CdnError> {
        self.inner.invalidation_completed(id, invalidation_id).await
    }
}
