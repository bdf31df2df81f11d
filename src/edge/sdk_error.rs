//! How any AWS SDK error becomes the code and message this crate reports:
//! the service's own when it answered, `Unreachable` when the network failed.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

pub fn describe<E, R>(err: &SdkError<E, R>) -> (Option<String>, String)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let unreachable = match err {
        SdkError::DispatchFailure(f) => f.is_io() || f.is_timeout(),
        SdkError::TimeoutError(_) => true,
        _ => false,
    };
    let code = if unreachable {
        Some("Unreachable".to_string())
    } else {
        err.code().map(String::from)
    };
    let message = match err.message() {
        Some(m) if !unreachable => m.to_string(),
        _ => DisplayErrorContext(err).to_string(),
    };
    (code, message)
}
