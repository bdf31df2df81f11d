//! The site as a visitor reaches it, behind a small trait this crate owns:
//! one GET of a URL with the headers given, and nothing else. No
//! credentials are ever added (the client is built without the AWS
//! configuration), no redirect is followed and no body is decompressed: the
//! caller sees exactly what was served.
//!
//! The real client is the AWS SDK's own HTTPS connector
//! (`aws-smithy-http-client`: hyper 1 over rustls with aws-lc, the system's
//! root certificates), already in the binary for S3: a second HTTP or TLS
//! stack would only add size.

use std::future::Future;
use std::time::Duration;

use aws_smithy_http_client::Connector;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::byte_stream::ByteStream;

/// A request that got no answer (or no whole body).
#[derive(Debug, Clone, thiserror::Error)]
#[error("GET {url} failed: {message}")]
pub struct SiteError {
    pub url: String,
    pub message: String,
}

/// An answer: its status, its headers (names lowercase, in the order
/// served) and its body, still to be read.
pub struct Answer<B> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: B,
}

/// The body of an answer, read chunk by chunk as it arrives; dropping it
/// unread drops the connection.
pub trait Body: Send {
    /// The next chunk; `None` at the end.
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, SiteError>> + Send;
}

/// What the verification needs from the site.
pub trait Site: Sync {
    type Body: Body;

    /// GET `url` with `headers` (and those every HTTP client adds: Host).
    fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = Result<Answer<Self::Body>, SiteError>> + Send;
}

/// An error and its causes, each once: `io error: client error (Connect):
/// TLS handshake failed: invalid peer certificate: UnknownIssuer`.
fn causes(error: &dyn std::error::Error) -> String {
    let mut said: Vec<String> = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !said.iter().any(|s| s.contains(&text)) {
            said.push(text);
        }
        cause = e.source();
    }
    said.join(": ")
}

/// The site over HTTPS (or HTTP), with the SDK's connector.
pub struct HttpSite {
    connector: Connector,
}

impl HttpSite {
    /// `connect_timeout` to open a connection, `read_timeout` until the
    /// answer starts (CONNECT_TIMEOUT and READ_TIMEOUT).
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .build();
        let connector = Connector::builder()
            .connector_settings(settings)
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .build();
        HttpSite { connector }
    }
}

pub struct HttpBody {
    url: String,
    stream: ByteStream,
}

impl Body for HttpBody {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, SiteError> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(bytes.to_vec())),
            Some(Err(e)) => Err(SiteError {
                url: self.url.clone(),
                message: format!("the body was cut short: {}", causes(&e)),
            }),
        }
    }
}

impl Site for HttpSite {
    type Body = HttpBody;

    async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer<HttpBody>, SiteError> {
        let error = |message: String| SiteError {
            url: url.to_string(),
            message,
        };
        let mut request = HttpRequest::get(url).map_err(|e| error(e.to_string()))?;
        for (name, value) in headers {
            request
                .headers_mut()
                .try_insert(name.to_string(), value.to_string())
                .map_err(|e| error(e.to_string()))?;
        }
        let response = self.connector.call(request).await.map_err(|e| {
            let what = if e.is_timeout() { "timed out: " } else { "" };
            error(format!("{what}{}", causes(&e)))
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
            .collect();
        Ok(Answer {
            status,
            headers,
            body: HttpBody {
                url: url.to_string(),
                stream: ByteStream::new(response.into_body()),
            },
        })
    }
}
