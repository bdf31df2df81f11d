//! How any AWS SDK error becomes the code and message this crate reports:
//! the service's own when it answered, `Timeout` when it did not answer
//! within the configured timeouts, `Unreachable` when the network failed.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

pub fn describe<E, R>(err: &SdkError<E, R>) -> (Option<String>, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let local = match err {
        SdkError::DispatchFailure(f) if f.is_timeout() => Some("Timeout"),
        SdkError::TimeoutError(_) => Some("Timeout"),
        SdkError::DispatchFailure(f) if f.is_io() => Some("Unreachable"),
        _ => None,
    };
    let unreachable = local.is_some();
    let code = local
        .map(String::from)
        .or_else(|| err.code().map(String::from));
    let message = match err.message() {
        Some(m) if !unreachable => m.to_string(),
        _ => DisplayErrorContext(err).to_string(),
    };
    (code, message)
}
