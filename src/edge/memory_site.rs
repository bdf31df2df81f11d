//! The site in memory, for unit tests: a CDN in front of a [`MemoryStore`]
//! that serves each object by its path below a prefix, with its headers and
//! ETag, and answers 404 (or another status) for a missing key. Faults are
//! set per path: a status, a Content-Type, a redirect, no answer, or the answer frozen
//! as it is now (a cache that keeps serving it) for a number of requests.
//! Every request is logged with its headers.

use std::collections::HashMap;
use std::sync::Mutex;

use percent_encoding::percent_decode_str;

use super::memory::MemoryStore;
use super::site::{Answer, Body, Site, SiteError};
use crate::model::Prefix;

/// A request as the site got it: its URL and headers.
pub type Request = (String, Vec<(String, String)>);

/// What a path answers instead of the object.
#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    ContentType(String),
    Redirect(String),
    /// Never answers.
    Stall,
    /// This answer, `times` more times (a cache that still holds it).
    Frozen {
        answer: Stored,
        times: usize,
    },
}

/// An answer as the site holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

pub struct MemorySite<'a> {
    store: &'a MemoryStore,
    prefix: Prefix,
    /// `dir/` serves `dir/<index>` (a website endpoint's index document).
    index: Option<String>,
    missing: u16,
    /// Compress answers stored without Content-Encoding, as CloudFront's
    /// "Compress objects automatically" does (gzip, weak ETag).
    compress: bool,
    faults: Mutex<HashMap<String, Fault>>,
    requests: Mutex<Vec<Request>>,
}

impl<'a> MemorySite<'a> {
    pub fn new(store: &'a MemoryStore, prefix: &str) -> Self {
        MemorySite {
            store,
            prefix: Prefix::new(prefix),
            index: None,
            missing: 404,
            compress: false,
            faults: Mutex::default(),
            requests: Mutex::default(),
        }
    }

    pub fn with_index(mut self, name: &str) -> Self {
        self.index = Some(name.into());
        self
    }

    /// The status of a missing key: S3 answers 403 to whoever may not list
    /// the bucket.
    pub fn missing_status(mut self, status: u16) -> Self {
        self.missing = status;
        self
    }

    pub fn compressing(mut self) -> Self {
        self.compress = true;
        self
    }

    pub fn fault(&self, path: &str, fault: Fault) {
        self.faults.lock().unwrap().insert(path.into(), fault);
    }

    /// Keeps serving `path` as it is now for `times` more requests.
    pub fn freeze(&self, path: &str, times: usize) {
        let answer = self.answer(path);
        self.fault(path, Fault::Frozen { answer, times });
    }

    /// Every request: its URL and headers.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// What the origin holds for `path` (below the prefix, percent-encoded).
    fn answer(&self, path: &str) -> Stored {
        let mut relative = percent_decode_str(path.trim_start_matches('/'))
            .decode_utf8_lossy()
            .to_string();
        if let Some(index) = &self.index {
            if relative.is_empty() || relative.ends_with('/') {
                relative.push_str(index);
            }
        }
        let key = self.prefix.join(&relative);
        let (Some(body), Some(headers), Some(etag)) = (
            self.store.body(&key),
            self.store.headers_of(&key),
            self.store.etag_of(&key),
        ) else {
            return Stored {
                status: self.missing,
                headers: Vec::new(),
                body: Vec::new(),
            };
        };
        let mut out = vec![("etag".to_string(), format!("\"{etag}\""))];
        for (name, value) in [
            ("content-type", headers.content_type),
            ("content-encoding", headers.content_encoding),
            ("cache-control", headers.cache_control),
        ] {
            if let Some(value) = value {
                out.push((name.into(), value));
            }
        }
        Stored {
            status: 200,
            headers: out,
            body,
        }
    }

    fn compressed(mut stored: Stored) -> Stored {
        use std::io::Write;
        if stored.status != 200 || stored.headers.iter().any(|(n, _)| n == "content-encoding") {
            return stored;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&stored.body).unwrap();
        stored.body = gz.finish().unwrap();
        for (name, value) in &mut stored.headers {
            if name == "etag" {
                *value = format!("W/{value}");
            }
        }
        stored
            .headers
            .push(("content-encoding".into(), "gzip".into()));
        stored
    }
}

pub struct MemoryBody(Vec<u8>);

impl Body for MemoryBody {
    async fn chunk(&mut self) -> Result<Option<Vec<u8>>, SiteError> {
        // Small chunks: the reader must put a body together.
        if self.0.is_empty() {
            return Ok(None);
        }
        let rest = self.0.split_off(self.0.len().min(3));
        Ok(Some(std::mem::replace(&mut self.0, rest)))
    }
}

impl Site for MemorySite<'_> {
    type Body = MemoryBody;

    async fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer<MemoryBody>, SiteError> {
        self.requests.lock().unwrap().push((
            url.to_string(),
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        ));
        let path = match url.split_once("://").map(|(_, rest)| rest) {
            Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => url,
        };
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            let fault = faults.get_mut(path).cloned();
            if let Some(Fault::Frozen { times, .. }) = faults.get_mut(path) {
                *times = times.saturating_sub(1);
                if *times == 0 {
                    faults.remove(path);
                }
            }
            fault
        };
        if matches!(fault, Some(Fault::Stall)) {
            std::future::pending::<()>().await;
        }
        let frozen = matches!(fault, Some(Fault::Frozen { .. }));
        let mut stored = match &fault {
            Some(Fault::Frozen { answer, .. }) => answer.clone(),
            _ => self.answer(path),
        };
        match fault {
            Some(Fault::Status(status)) => stored.status = status,
            Some(Fault::ContentType(t)) => {
                stored.headers.retain(|(n, _)| n != "content-type");
                stored.headers.push(("content-type".into(), t));
            }
            Some(Fault::Redirect(to)) => {
                stored = Stored {
                    status: 301,
                    headers: vec![("location".into(), to)],
                    body: Vec::new(),
                }
            }
            _ => {}
        }
        if self.compress {
            stored = Self::compressed(stored);
        }
        if frozen {
            stored
                .headers
                .push(("x-cache".into(), "Hit from memory".into()));
            stored.headers.push(("age".into(), "42".into()));
        }
        Ok(Answer {
            status: stored.status,
            headers: stored.headers,
            body: MemoryBody(stored.body),
        })
    }
}
