//! The edges: the only modules that name the AWS SDK (and the file system
//! walk, and the site as visitors reach it), each behind a small trait the
//! rest of the crate is generic over.
//! Tests swap in the in-memory doubles and the failure-injecting wrapper.

pub mod allocator;
pub mod auth;
pub mod cdn;
pub mod cloudfront;
#[cfg(test)]
pub mod failure;
pub mod listing;
#[cfg(test)]
pub mod memory;
#[cfg(test)]
pub mod memory_cdn;
#[cfg(test)]
pub mod memory_site;
pub mod s3;
pub mod scan;
mod sdk_error;
pub mod signals;
pub mod site;
pub mod store;
