//! The verification's requests: each check asked of the site as a browser
//! asks (`Accept-Encoding: br, gzip`, no credential, no redirect followed),
//! its body hashed as it arrives (the CDN's own compression undone, nothing
//! else), the answer compared (`plan::verify::compare`), and asked again
//! while it may be stale, a few times, within VERIFY_TIMEOUT. Which paths,
//! and what counts as a mismatch, are `plan::verify`'s decisions.

use std::io::Write;
use std::time::{Duration, Instant};

use futures::StreamExt;
use md5::{Digest, Md5};

use crate::edge::site::{Body, Site, SiteError};
use crate::model::ETag;
use crate::plan::verify::{
    self, Check, Codec, Problem, Reading, Selection, Served, Verdict, Verification,
};

use super::events::{Event, Sink};
use super::pacing::Pacing;

/// What a browser sends for a page or an asset, and who is asking.
pub const HEADERS: &[(&str, &str)] = &[
    ("accept", "*/*"),
    ("accept-encoding", "br, gzip"),
    (
        "user-agent",
        concat!(
            "s3-cloudfront-deploy/",
            env!("CARGO_PKG_VERSION"),
            " (verify)"
        ),
    ),
];

/// Times a stale answer is asked again after the first request: edges
/// converge within seconds of a completed invalidation, and an error a
/// cache holds (403, 404) lasts its error caching TTL, 10 s by default.
pub const RECHECKS: u32 = 3;

/// The verification's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests in flight.
    pub concurrency: usize,
    /// The whole verification, rechecks included (VERIFY_TIMEOUT).
    pub timeout: Duration,
    /// One request, its body read whole (READ_TIMEOUT).
    pub request: Duration,
}

/// Requests every check of `selection` below `base` and returns the
/// verdicts, sorted by path. Checks still unanswered when `limits.timeout`
/// runs out are `not checked`.
pub async fn verify<W: Site, E: Sink>(
    site: &W,
    base: &str,
    selection: Selection,
    limits: Limits,
    pacing: Pacing,
    sink: &E,
) -> Verification {
    sink.event(&Event::Verifying {
        url: base,
        checks: selection.checks.len(),
        candidates: selection.candidates,
        sampled: selection.sampled(),
    });
    let deadline = Instant::now() + limits.timeout;
    let mut verdicts: Vec<Verdict> = futures::stream::iter(selection.checks)
        .map(|check| async move {
            let url = format!("{base}{}", check.path);
            let checked = tokio::time::timeout_at(
                deadline.into(),
                recheck_while_stale(site, &url, &check, &limits, pacing, deadline, sink),
            )
            .await;
            checked.unwrap_or_else(|_| Verdict {
                check,
                url,
                status: None,
                x_cache: None,
                age: None,
                attempts: 0,
                problems: vec![Problem::NotChecked],
            })
        })
        .buffer_unordered(limits.concurrency.max(1))
        .collect()
        .await;
    verdicts.sort_by(|a, b| a.check.path.cmp(&b.check.path));
    Verification {
        url: base.to_string(),
        candidates: selection.candidates,
        verdicts,
    }
}

/// One check: asked, and asked again after `pacing.recheck` (doubling)
/// while every problem may clear, up to [`RECHECKS`] times and never past
/// `deadline`.
async fn recheck_while_stale<W: Site, E: Sink>(
    site: &W,
    url: &str,
    check: &Check,
    limits: &Limits,
    pacing: Pacing,
    deadline: Instant,
    sink: &E,
) -> Verdict {
    let mut delay = pacing.recheck;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let fetched = tokio::time::timeout(limits.request, fetch(site, url, check))
            .await
            .unwrap_or_else(|_| {
                Err(SiteError {
                    url: url.to_string(),
                    message: format!(
                        "no whole answer within {} s (READ_TIMEOUT)",
                        limits.request.as_secs()
                    ),
                })
            });
        let (served, problems) = match fetched {
            Ok(served) => {
                let problems = verify::compare(check, &served);
                (Some(served), problems)
            }
            Err(e) => (None, vec![Problem::Unreachable(e.to_string())]),
        };
        let again = !problems.is_empty()
            && problems.iter().all(Problem::may_clear)
            && attempts <= RECHECKS
            && Instant::now() + delay < deadline;
        if !again {
            return Verdict {
                check: check.clone(),
                url: url.to_string(),
                status: served.as_ref().map(|s| s.status),
                x_cache: served.as_ref().and_then(|s| s.x_cache.clone()),
                age: served.and_then(|s| s.age),
                attempts,
                problems,
            };
        }
        sink.event(&Event::Rechecking {
            url,
            problems: &problems,
            delay,
        });
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}

/// One request, its body hashed when the comparison can use it.
async fn fetch<W: Site>(site: &W, url: &str, check: &Check) -> Result<Served, SiteError> {
    let answer = site.get(url, HEADERS).await?;
    let encoding = answer
        .headers
        .iter()
        .find(|(name, _)| name == "content-encoding")
        .map(|(_, value)| value.as_str());
    let md5 = match verify::reading(check, answer.status, encoding) {
        Reading::Skip => None,
        Reading::Raw { limit } => digest(answer.body, None, limit).await?,
        Reading::Decode { codec, limit } => digest(answer.body, Some(codec), limit).await?,
    };
    Ok(Served::new(answer.status, &answer.headers, md5))
}

/// The MD5 of a body, decoded first with `codec`; `None` when it is not
/// valid in that encoding or holds more than `limit` bytes (then not the
/// object's, and the rest is not read).
async fn digest<B: Body>(
    mut body: B,
    codec: Option<Codec>,
    limit: u64,
) -> Result<Option<ETag>, SiteError> {
    let sink = Md5Sink {
        md5: Md5::new(),
        written: 0,
        limit,
    };
    let mut decoder = match codec {
        None => Decoder::Plain(sink),
        Some(Codec::Gzip) => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(sink))),
        Some(Codec::Brotli) => {
            Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(sink, 64 * 1024)))
        }
    };
    while let Some(chunk) = body.chunk().await? {
        if decoder.write_all(&chunk).is_err() {
            return Ok(None);
        }
    }
    Ok(decoder
        .finish()
        .map(|sink| ETag::new(&hex::encode(sink.md5.finalize()))))
}

/// Hashes what is written, refusing more than `limit` bytes.
struct Md5Sink {
    md5: Md5,
    written: u64,
    limit: u64,
}

impl Write for Md5Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len() as u64;
        if self.written > self.limit {
            return Err(std::io::Error::other("more bytes than the object holds"));
        }
        self.md5.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Plain(Md5Sink),
    // Decoders hold their state (KBs for brotli): boxed, as they are rare.
    Gzip(Box<flate2::write::GzDecoder<Md5Sink>>),
    Brotli(Box<brotli::DecompressorWriter<Md5Sink>>),
}

impl Decoder {
    /// The sink, once the whole stream was valid.
    fn finish(self) -> Option<Md5Sink> {
        match self {
            Decoder::Plain(sink) => Some(sink),
            Decoder::Gzip(d) => d.finish().ok(),
            Decoder::Brotli(mut d) => {
                d.close().ok()?;
                d.into_inner().ok()
            }
        }
    }
}

impl Write for Decoder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Decoder::Plain(w) => w.write(buf),
            Decoder::Gzip(w) => w.write(buf),
            Decoder::Brotli(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Decoder::Plain(w) => w.flush(),
            Decoder::Gzip(w) => w.flush(),
            Decoder::Brotli(w) => w.flush(),
        }
    }
}
