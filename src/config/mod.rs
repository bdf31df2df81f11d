//! The pipe's whole configuration, read from environment variables and
//! validated at once, so a user sees every mistake in one run and no network
//! call is made with a half-valid configuration. Values come out parsed:
//! enums, a compiled glob set, rules, a prefix, limits.

pub mod credentials;
pub mod dates;
pub mod extra_args;
pub mod rules_file;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::model::{Acl, Key, Location, ObjectSettings, Prefix, StorageClass};
use crate::plan::filter::Filters;
use crate::plan::grace::Grace;
use crate::plan::guard::{Limits, MaxDelete};
use crate::plan::rules::Rules;
use crate::plan::{ENTRY_DOCUMENTS, entry_document_globs, manifest};
use extra_args::ExtraArgs;

/// Requests to S3 in flight, parts included. At 100 ms a request, a first
/// deploy of 2,000 small files to a server that answers at once took 3.5 s
/// with 64, 1.9 s with 128 and 1.1 s with 256 (s5cmd: 2.4-3.6 s). Against
/// moto at 0 ms, 256 cost memory (peak RSS 45-52 MB against 33-35 MB with 128
/// and 26-29 MB with 64, about 70 KB a request in flight) and time (the
/// server slows under that many connections); 128 cost about 6 MB and no
/// time or CPU beyond the noise. Part bodies in flight have their own bound,
/// [`crate::edge::store::PART_BYTES_IN_FLIGHT`].
pub const DEFAULT_CONCURRENCY: usize = 128;

/// VERIFY's requests in flight when CONCURRENCY is not set: they go to the
/// site, not to S3, where a burst may trip a CDN's rate rules (AWS WAF).
pub const DEFAULT_VERIFY_CONCURRENCY: usize = 64;

/// The variables as the environment holds them: every one optional and a
/// string, so that parsing never stops at the first bad value.
#[derive(Debug, Default, Deserialize)]
struct RawEnv {
    s3_bucket: Option<String>,
    local_path: Option<String>,
    aws_default_region: Option<String>,
    aws_region: Option<String>,
    acl: Option<String>,
    storage_class: Option<String>,
    cache_control: Option<String>,
    expires: Option<String>,
    content_encoding: Option<String>,
    delete_flag: Option<String>,
    debug: Option<String>,
    concurrency: Option<String>,
    aws_endpoint_url: Option<String>,
    aws_endpoint_url_s3: Option<String>,
    aws_s3_force_path_style: Option<String>,
    aws_oidc_role_arn: Option<String>,
    bitbucket_step_oidc_token: Option<String>,
    aws_access_key_id: Option<String>,
    aws_secret_access_key: Option<String>,
    aws_session_token: Option<String>,
    aws_role_session_name: Option<String>,
    aws_role_duration_seconds: Option<String>,
    bitbucket_repo_slug: Option<String>,
    bitbucket_build_number: Option<String>,
    aws_profile: Option<String>,
    aws_web_identity_token_file: Option<String>,
    aws_container_credentials_relative_uri: Option<String>,
    aws_container_credentials_full_uri: Option<String>,
    distribution_id: Option<String>,
    paths: Option<String>,
    wait: Option<String>,
    wait_timeout: Option<String>,
    invalidation_max_paths: Option<String>,
    invalidate: Option<String>,
    aws_endpoint_url_cloudfront: Option<String>,
    dry_run: Option<String>,
    max_delete: Option<String>,
    allow_delete_all: Option<String>,
    ordered_deploy: Option<String>,
    entry_documents: Option<String>,
    pre_execution_script: Option<String>,
    // Read by `report_file`, which must work when the rest is invalid;
    // listed here so that every variable the pipe reads is in one place.
    #[allow(dead_code)]
    report_file: Option<String>,
    #[allow(dead_code)]
    bitbucket_pipe_shared_storage_dir: Option<String>,
    rules_file: Option<String>,
    rules: Option<String>,
    precompressed: Option<String>,
    manifest: Option<String>,
    manifest_key: Option<String>,
    aws_max_attempts: Option<String>,
    aws_retry_mode: Option<String>,
    connect_timeout: Option<String>,
    read_timeout: Option<String>,
    abort_incomplete_uploads_after: Option<String>,
    delete_grace: Option<String>,
    s3_cloudfront_deploy_now: Option<String>,
    verify: Option<String>,
    verify_url: Option<String>,
    verify_timeout: Option<String>,
    index_document: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub region: String,
    pub credentials: credentials::Source,
    /// What to deploy, unless the pipe only invalidates.
    pub deploy: Option<Deploy>,
    /// What to invalidate, when DISTRIBUTION_ID is set and INVALIDATE is on.
    pub cdn: Option<Cdn>,
    /// Only errors and the final line (`--only-show-errors`, `--quiet`).
    pub quiet: bool,
    /// Retries and timeouts of every AWS request.
    pub network: Network,
    /// What to check through the site after the deploy (VERIFY).
    pub verify: Option<Verify>,
}

/// The check of a deploy from the visitor's side (VERIFY).
#[derive(Debug, Clone)]
pub struct Verify {
    /// VERIFY_URL: where the deploy's prefix is served, without a trailing
    /// `/`. `None`: `https://<domain>` of `distribution_id`, through its
    /// origin path.
    pub url: Option<String>,
    /// The first of DISTRIBUTION_ID: its domain is the default URL.
    pub distribution_id: Option<String>,
    /// INDEX_DOCUMENT: `dir/<name>` is also checked as `dir/`.
    pub index_document: Option<String>,
    /// VERIFY_TIMEOUT: the whole verification, retries included.
    pub timeout: Duration,
    /// Requests in flight (CONCURRENCY).
    pub concurrency: usize,
    /// ENTRY_DOCUMENTS, whether ORDERED_DEPLOY is on or not: always checked.
    pub entry_documents: globset::GlobSet,
}

/// How long a verification may take, its rechecks of stale answers included.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(300);

/// The report's name in BITBUCKET_PIPE_SHARED_STORAGE_DIR.
pub const REPORT_NAME: &str = "s3-cloudfront-deploy/report.json";

#[derive(Debug, Clone)]
pub struct Deploy {
    pub bucket: String,
    pub prefix: Prefix,
    pub local_path: PathBuf,
    pub object: ObjectSettings,
    pub delete: bool,
    /// Requests in flight (CONCURRENCY), parts included, over every file.
    pub concurrency: usize,
    pub force_path_style: bool,
    pub filters: Filters,
    pub dry_run: bool,
    pub size_only: bool,
    pub follow_symlinks: bool,
    pub delete_limits: Limits,
    /// Entry documents go last; `None` when ORDERED_DEPLOY is off.
    pub entry_documents: Option<globset::GlobSet>,
    /// Progress lines during long uploads (off with `--no-progress`).
    pub progress: bool,
    /// RULES, then the rules file's.
    pub rules: Rules,
    /// Upload `x.br` / `x.gz` under `x`'s key.
    pub precompressed: bool,
    /// Where the deploy manifest lives; `None` when MANIFEST is off.
    pub manifest: Option<Location>,
    /// Incomplete multipart uploads under the prefix older than this are
    /// aborted; `None` turns the sweep off.
    pub abort_incomplete_after: Option<Duration>,
    /// How long DELETE_FLAG keeps an object with no local file
    /// (DELETE_GRACE); zero deletes at once.
    pub grace: Grace,
    /// The deploy's clock for DELETE_GRACE, in seconds since the epoch,
    /// when S3_CLOUDFRONT_DEPLOY_NOW sets it (for tests); else the system's.
    pub now: Option<i64>,
}

/// How the SDK retries a failed request (the AWS SDKs' retry modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// Exponential backoff with jitter, up to the attempts.
    Standard,
    /// Standard, and the client slows its own request rate when S3
    /// answers 503 SlowDown.
    Adaptive,
}

/// Retries and timeouts of every request to AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// Attempts per request, the first included (AWS_MAX_ATTEMPTS).
    pub max_attempts: u32,
    pub retry_mode: RetryMode,
    /// To open a connection (CONNECT_TIMEOUT).
    pub connect_timeout: Duration,
    /// From sending a request to the first byte of its answer, the body
    /// sent included, so it must carry a whole 8 MiB part (READ_TIMEOUT).
    pub read_timeout: Duration,
}

/// A deploy is thousands of requests: three attempts (the SDK's default)
/// fail one in a few hundred of them when S3 answers 503 SlowDown.
pub const DEFAULT_NETWORK: Network = Network {
    max_attempts: 10,
    retry_mode: RetryMode::Standard,
    connect_timeout: Duration::from_secs(10),
    read_timeout: Duration::from_secs(60),
};

/// aws-cli's and S3 lifecycle rules' usual choice is days; an hour is long
/// enough that no running deploy of ours is still uploading.
pub const DEFAULT_ABORT_INCOMPLETE_AFTER: Duration = Duration::from_secs(3600);

pub const DEFAULT_WAIT_TIMEOUT: u64 = 900;
/// CloudFront's free tier covers 1,000 paths a month: 15 per deploy leaves
/// room for about two deploys a day.
pub const DEFAULT_MAX_PATHS: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cdn {
    pub distribution_ids: Vec<String>,
    /// `PATHS`, sent as given instead of the computed list.
    pub paths: Option<Vec<String>>,
    pub wait: bool,
    pub wait_timeout: std::time::Duration,
    pub max_paths: usize,
    /// The start of every CallerReference: the build that made it.
    pub reference: String,
}

/// Every validation problem found, grouped by variable, in the pipes' format.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub BTreeMap<String, Vec<String>>);

impl ValidationErrors {
    pub fn add(&mut self, var: &str, reason: impl Into<String>) {
        self.0
            .entry(var.to_string())
            .or_default()
            .push(reason.into());
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Validation errors:")?;
        for (var, reasons) in &self.0 {
            writeln!(f, "{var}:")?;
            for reason in reasons {
                writeln!(f, "- {reason}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Whether `DEBUG` asks for debug output, read before validation so that the
/// messages validation itself logs are filtered the same way.
pub fn debug_requested() -> bool {
    std::env::var("DEBUG").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "yes" | "on" | "1"
        )
    })
}

impl Config {
    /// Reads the configuration from the process environment; relative paths
    /// are resolved against the working directory.
    pub fn from_env() -> Result<Config, ValidationErrors> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self::from_vars(environment(), &cwd)
    }

    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
        cwd: &Path,
    ) -> Result<Config, ValidationErrors> {
        // An empty value means "not set": Bitbucket passes unset pipe variables
        // as empty strings.
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect();
        let mut errors = ValidationErrors::default();
        // EXTRA_ARGS may come as EXTRA_ARGS_COUNT + EXTRA_ARGS_<n>, so it is
        // read from the whole map rather than as one field.
        let extra = extra_args::words(vars.get("EXTRA_ARGS").map(String::as_str), &vars)
            .map_err(|e| vec![e])
            .and_then(|words| extra_args::parse(&words))
            .unwrap_or_else(|problems| {
                for p in problems {
                    errors.add("EXTRA_ARGS", p);
                }
                ExtraArgs::default()
            });
        // Every field is an optional string, so this fails only on a variable
        // that is not valid Unicode, which `std::env::vars` already refuses.
        let raw: RawEnv = envy::from_iter(vars.clone()).unwrap_or_else(|e| {
            errors.add("environment", e.to_string());
            RawEnv::default()
        });
        let mut v = Validator {
            errors: &mut errors,
        };

        // Only DISTRIBUTION_ID (no S3_BUCKET, no LOCAL_PATH): invalidate only,
        // as atlassian/aws-cloudfront-invalidate does.
        let deploying =
            raw.s3_bucket.is_some() || raw.local_path.is_some() || raw.distribution_id.is_none();
        let (bucket, prefix) = match raw.s3_bucket.as_deref() {
            None if deploying => {
                v.missing(
                    "S3_BUCKET",
                    "the bucket to deploy to, e.g. my-bucket or my-bucket/site \
                     (or set only DISTRIBUTION_ID to invalidate without deploying)",
                );
                (String::new(), Prefix::default())
            }
            None => (String::new(), Prefix::default()),
            Some(s) => v.bucket("S3_BUCKET", s),
        };
        let local_path = match raw.local_path.as_deref() {
            None if deploying => {
                v.missing(
                    "LOCAL_PATH",
                    "the folder to deploy, e.g. build or $BITBUCKET_CLONE_DIR/public",
                );
                PathBuf::new()
            }
            None => PathBuf::new(),
            Some(p) => v.directory("LOCAL_PATH", p, cwd),
        };
        let region = raw
            .aws_default_region
            .clone()
            .or_else(|| raw.aws_region.clone())
            .map(|r| r.trim().to_string());
        if region.is_none() {
            v.missing("AWS_DEFAULT_REGION", "the bucket's region, e.g. us-east-1");
        }
        let header = |v: &mut Validator, var: &str, value: &str| v.header(var, Some(value));
        let object = ObjectSettings {
            acl: v.overridden(
                ("ACL", raw.acl.as_deref()),
                ("--acl", extra.acl.as_deref()),
                |v, var, value| v.one_of(var, value, Acl::parse, Acl::names),
            ),
            storage_class: v.overridden(
                ("STORAGE_CLASS", raw.storage_class.as_deref()),
                ("--storage-class", extra.storage_class.as_deref()),
                |v, var, value| v.one_of(var, value, StorageClass::parse, StorageClass::names),
            ),
            cache_control: v.overridden(
                ("CACHE_CONTROL", raw.cache_control.as_deref()),
                ("--cache-control", extra.cache_control.as_deref()),
                header,
            ),
            expires: v.overridden(
                ("EXPIRES", raw.expires.as_deref()),
                ("--expires", extra.expires.as_deref()),
                |v, var, value| v.timestamp(var, value),
            ),
            content_encoding: v.overridden(
                ("CONTENT_ENCODING", raw.content_encoding.as_deref()),
                ("--content-encoding", extra.content_encoding.as_deref()),
                header,
            ),
            content_type: v.header("EXTRA_ARGS", extra.content_type.as_deref()),
            content_language: v.header("EXTRA_ARGS", extra.content_language.as_deref()),
            content_disposition: v.header("EXTRA_ARGS", extra.content_disposition.as_deref()),
            metadata: extra.metadata.clone(),
            sse: extra.sse,
            sse_kms_key_id: extra.sse_kms_key_id.clone(),
        };
        for value in extra.metadata.values() {
            v.header("EXTRA_ARGS", Some(value));
        }
        for note in &extra.notes {
            tracing::info!("{note}");
        }
        let delete = v.boolean("DELETE_FLAG", raw.delete_flag.as_deref(), false) || extra.delete;
        let dry_run = v.boolean("DRY_RUN", raw.dry_run.as_deref(), false) || extra.dryrun;
        let max_delete = raw
            .max_delete
            .as_deref()
            .map_or(MaxDelete::Default, |m| v.max_delete(m));
        let allow_delete_all =
            v.boolean("ALLOW_DELETE_ALL", raw.allow_delete_all.as_deref(), false);
        let entry_globs = v.patterns("ENTRY_DOCUMENTS", raw.entry_documents.as_deref());
        let entry_documents = v
            .boolean("ORDERED_DEPLOY", raw.ordered_deploy.as_deref(), true)
            .then(|| entry_globs.clone())
            .flatten();
        let rules = v.rules(raw.rules.as_deref(), raw.rules_file.as_deref(), cwd);
        let precompressed = v.boolean("PRECOMPRESSED", raw.precompressed.as_deref(), false);
        let manifest = v
            .boolean("MANIFEST", raw.manifest.as_deref(), true)
            .then(|| v.manifest_key(raw.manifest_key.as_deref(), &bucket, &prefix));
        let grace = v.grace(raw.delete_grace.as_deref(), delete, manifest.is_some());
        let now = raw
            .s3_cloudfront_deploy_now
            .as_deref()
            .and_then(|value| v.timestamp("S3_CLOUDFRONT_DEPLOY_NOW", value));
        if let Some(now) = now {
            tracing::warn!(
                "S3_CLOUDFRONT_DEPLOY_NOW sets this deploy's clock to {} for DELETE_GRACE: \
                 a setting for tests, not for real deploys",
                crate::plan::grace::minute(now)
            );
        }
        if raw.pre_execution_script.is_some() {
            v.errors.add(
                "PRE_EXECUTION_SCRIPT",
                "is not supported: this image has no shell. Run the script in an earlier line of the step's \
                 script: (the build folder is shared with the pipe)",
            );
        }
        // Read by `debug_requested` before validation; checked here so that a
        // typo is reported like any other.
        v.boolean("DEBUG", raw.debug.as_deref(), false);
        let concurrency = v.count(
            "CONCURRENCY",
            raw.concurrency.as_deref(),
            1..=256,
            DEFAULT_CONCURRENCY,
        );
        let s3_endpoint = raw
            .aws_endpoint_url_s3
            .clone()
            .or_else(|| raw.aws_endpoint_url.clone());
        for (var, url) in [
            ("AWS_ENDPOINT_URL_S3", &raw.aws_endpoint_url_s3),
            ("AWS_ENDPOINT_URL", &raw.aws_endpoint_url),
        ] {
            if let Some(url) = url {
                v.url(var, url);
            }
        }
        // A custom endpoint is almost always an S3-compatible store or an
        // emulator reached by IP or a single host name, where virtual-host
        // addressing cannot resolve; the Rust SDK ignores this variable itself.
        let force_path_style = v.boolean(
            "AWS_S3_FORCE_PATH_STYLE",
            raw.aws_s3_force_path_style.as_deref(),
            s3_endpoint.is_some(),
        );

        let network = Network {
            max_attempts: v.count(
                "AWS_MAX_ATTEMPTS",
                raw.aws_max_attempts.as_deref(),
                1..=100,
                DEFAULT_NETWORK.max_attempts as usize,
            ) as u32,
            retry_mode: v.retry_mode(raw.aws_retry_mode.as_deref()),
            connect_timeout: v
                .timeout("CONNECT_TIMEOUT", raw.connect_timeout.as_deref())
                .unwrap_or(DEFAULT_NETWORK.connect_timeout),
            read_timeout: v
                .timeout("READ_TIMEOUT", raw.read_timeout.as_deref())
                .unwrap_or(DEFAULT_NETWORK.read_timeout),
        };
        let abort_incomplete_after = match raw.abort_incomplete_uploads_after.as_deref() {
            None => Some(DEFAULT_ABORT_INCOMPLETE_AFTER),
            Some(age) => v
                .duration("ABORT_INCOMPLETE_UPLOADS_AFTER", Some(age))
                .filter(|d| !d.is_zero()),
        };
        if raw.report_file.is_some() {
            if let Some(path) = report_file(&vars, cwd) {
                v.report_path(&path);
            }
        }
        let mut cdn = v.cdn(&raw);
        let verify_concurrency = if raw.concurrency.is_some() {
            concurrency
        } else {
            DEFAULT_VERIFY_CONCURRENCY
        };
        let verify = v.verify(&raw, deploying, verify_concurrency, entry_globs);
        if let (Some(cdn), Some(_)) = (&mut cdn, &verify) {
            // What is checked must be what visitors get: after the invalidation.
            cdn.wait = true;
        }
        if let Some(url) = &raw.aws_endpoint_url_cloudfront {
            v.url("AWS_ENDPOINT_URL_CLOUDFRONT", url);
        }

        let credentials = credentials::choose(&credentials::AuthVars {
            oidc_role_arn: raw.aws_oidc_role_arn,
            oidc_token: raw.bitbucket_step_oidc_token,
            access_key_id: raw.aws_access_key_id,
            secret_access_key: raw.aws_secret_access_key,
            session_token: raw.aws_session_token,
            session_name: raw.aws_role_session_name,
            duration_seconds: raw.aws_role_duration_seconds,
            repo_slug: raw.bitbucket_repo_slug,
            build_number: raw.bitbucket_build_number.clone(),
            in_bitbucket: raw.bitbucket_build_number.is_some(),
            chain_configured: raw.aws_profile.is_some()
                || raw.aws_web_identity_token_file.is_some()
                || raw.aws_container_credentials_relative_uri.is_some()
                || raw.aws_container_credentials_full_uri.is_some(),
        })
        .unwrap_or_else(|problems| {
            for (var, reason) in problems {
                errors.add(var, reason);
            }
            credentials::Source::DefaultChain
        });

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Config {
            region: region.unwrap_or_default(),
            credentials,
            deploy: deploying.then_some(Deploy {
                bucket,
                prefix,
                local_path,
                object,
                delete,
                concurrency,
                force_path_style,
                filters: extra.filters,
                dry_run,
                size_only: extra.size_only,
                follow_symlinks: extra.follow_symlinks.unwrap_or(true),
                delete_limits: Limits {
                    max: max_delete,
                    allow_delete_all,
                },
                entry_documents,
                progress: !extra.no_progress,
                rules,
                precompressed,
                manifest,
                abort_incomplete_after,
                grace,
                now,
            }),
            quiet: extra.quiet,
            network,
            cdn,
            verify,
        })
    }
}

impl Deploy {
    /// `s3://bucket/prefix/`, for messages.
    pub fn destination(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.list_prefix())
    }
}

/// Where the JSON report goes: REPORT_FILE (relative to `cwd`), else
/// `BITBUCKET_PIPE_SHARED_STORAGE_DIR/s3-cloudfront-deploy/report.json`.
/// Read on its own so that a run whose configuration is invalid still
/// writes its report.
pub fn report_file(vars: &BTreeMap<String, String>, cwd: &Path) -> Option<PathBuf> {
    let var = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    match (var("REPORT_FILE"), var("BITBUCKET_PIPE_SHARED_STORAGE_DIR")) {
        (Some(file), _) => Some(cwd.join(file)),
        (None, Some(dir)) => Some(Path::new(dir).join(REPORT_NAME)),
        (None, None) => None,
    }
}

/// The process environment, a value that is not UTF-8 with U+FFFD in place
/// of the bytes: `std::env::vars` would panic on it, and the variable's own
/// check then says what is wrong (a bucket name, a path that does not
/// exist, a header that is not ASCII).
fn environment() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().map(|(k, v)| {
        (
            k.to_string_lossy().into_owned(),
            v.to_string_lossy().into_owned(),
        )
    })
}

/// [`report_file`] of the process environment.
pub fn report_file_from_env() -> Option<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    report_file(&environment().collect(), &cwd)
}

/// Warns about the variables of `vars` that are set, when what makes them
/// count is not: `"<names> set but <why>"`.
fn warn_idle(vars: &[(&str, &Option<String>)], why: &str) {
    let set: Vec<&str> = vars
        .iter()
        .filter(|(_, value)| value.is_some())
        .map(|(name, _)| *name)
        .collect();
    if !set.is_empty() {
        tracing::warn!("{} set but {why}", set.join(", "));
    }
}

/// Validation helpers: each records its problems and returns a usable value so
/// that the remaining variables are still checked.
struct Validator<'a> {
    errors: &'a mut ValidationErrors,
}

impl Validator<'_> {
    /// A variable and the `EXTRA_ARGS` flag that overrides it: the flag
    /// wins, since it came after the variables on aws-cli's command line in
    /// atlassian/aws-s3-deploy. Both are checked, each under its own name,
    /// so a bad value is reported even when the other one would win.
    fn overridden<T>(
        &mut self,
        (var, value): (&str, Option<&str>),
        (flag, flag_value): (&str, Option<&str>),
        check: impl Fn(&mut Validator, &str, &str) -> Option<T>,
    ) -> Option<T> {
        let from_var = value.and_then(|value| check(self, var, value));
        let from_flag = flag_value.and_then(|value| {
            let mut found = ValidationErrors::default();
            let parsed = check(&mut Validator { errors: &mut found }, flag, value);
            for reason in found.0.into_values().flatten() {
                self.errors.add("EXTRA_ARGS", format!("{flag} {reason}"));
            }
            parsed
        });
        from_flag.or(from_var)
    }

    fn cdn(&mut self, raw: &RawEnv) -> Option<Cdn> {
        // Checked with or without DISTRIBUTION_ID: a typo is a typo.
        let paths = raw
            .paths
            .as_deref()
            .map(|p| p.split_whitespace().map(str::to_string).collect::<Vec<_>>());
        for path in paths.iter().flatten() {
            if !path.starts_with('/') {
                self.errors
                    .add("PATHS", format!("{path:?} must start with /"));
            }
        }
        let wait = self.boolean("WAIT", raw.wait.as_deref(), false);
        let wait_timeout = self.count(
            "WAIT_TIMEOUT",
            raw.wait_timeout.as_deref(),
            1..=86_400,
            DEFAULT_WAIT_TIMEOUT as usize,
        );
        let max_paths = self.count(
            "INVALIDATION_MAX_PATHS",
            raw.invalidation_max_paths.as_deref(),
            1..=3000,
            DEFAULT_MAX_PATHS,
        );
        let enabled = self.boolean("INVALIDATE", raw.invalidate.as_deref(), true);
        let Some(ids) = raw.distribution_id.as_deref() else {
            warn_idle(
                &[
                    ("PATHS", &raw.paths),
                    ("WAIT", &raw.wait),
                    ("WAIT_TIMEOUT", &raw.wait_timeout),
                    ("INVALIDATION_MAX_PATHS", &raw.invalidation_max_paths),
                ],
                "DISTRIBUTION_ID is not: nothing is invalidated",
            );
            return None;
        };
        let ids: Vec<String> = ids
            .split([' ', ',', '\n', '\t'])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        for id in &ids {
            if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                self.errors.add(
                    "DISTRIBUTION_ID",
                    format!("{id:?} is not a distribution id (like E2QWRUHAPOMQZL): separate several with spaces or commas"),
                );
            }
        }
        if !enabled {
            tracing::info!(
                "INVALIDATE is false: DISTRIBUTION_ID is kept but nothing is invalidated"
            );
            return None;
        }
        let reference = match &raw.bitbucket_build_number {
            Some(build) => format!(
                "bitbucket-{}-{build}",
                raw.bitbucket_repo_slug.as_deref().unwrap_or("repo")
            ),
            None => format!(
                "local-{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            ),
        };
        Some(Cdn {
            distribution_ids: ids,
            paths,
            wait,
            wait_timeout: std::time::Duration::from_secs(wait_timeout as u64),
            max_paths,
            reference,
        })
    }

    /// REPORT_FILE must name a file that can be created: not a folder, and
    /// not under a file. Folders that do not exist yet are created.
    fn report_path(&mut self, path: &Path) {
        let problem = if path.is_dir() {
            Some(format!(
                "{} is a folder: name a file, e.g. out/report.json",
                path.display()
            ))
        } else {
            path.ancestors()
                .skip(1)
                .find(|a| a.exists())
                .filter(|a| !a.is_dir())
                .map(|a| {
                    format!(
                        "{} cannot be created: {} is a file",
                        path.display(),
                        a.display()
                    )
                })
        };
        if let Some(problem) = problem {
            self.errors.add("REPORT_FILE", problem);
        }
    }

    /// VERIFY and the variables that shape it, checked with or without
    /// VERIFY. `None` unless VERIFY is on (and everything it needs is there).
    fn verify(
        &mut self,
        raw: &RawEnv,
        deploying: bool,
        concurrency: usize,
        entry_documents: Option<globset::GlobSet>,
    ) -> Option<Verify> {
        let on = self.boolean("VERIFY", raw.verify.as_deref(), false);
        let url = raw
            .verify_url
            .as_deref()
            .map(|u| self.site_url("VERIFY_URL", u));
        let timeout = self
            .duration("VERIFY_TIMEOUT", raw.verify_timeout.as_deref())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_VERIFY_TIMEOUT);
        let index_document = raw.index_document.as_deref().map(str::trim);
        if let Some(name) = index_document.filter(|n| n.contains('/')) {
            self.errors.add(
                "INDEX_DOCUMENT",
                format!("{name:?} must be a file name without /, e.g. index.html"),
            );
        }
        let distribution_id = raw
            .distribution_id
            .as_deref()
            .and_then(|ids| ids.split([' ', ',', '\n', '\t']).find(|s| !s.is_empty()))
            .map(str::to_string);
        if !on {
            warn_idle(
                &[
                    ("VERIFY_URL", &raw.verify_url),
                    ("VERIFY_TIMEOUT", &raw.verify_timeout),
                    ("INDEX_DOCUMENT", &raw.index_document),
                ],
                "VERIFY is not: nothing is verified",
            );
            return None;
        }
        if !deploying {
            self.errors.add(
                "VERIFY",
                "checks what a deploy changed, and only DISTRIBUTION_ID is set: \
                 set S3_BUCKET and LOCAL_PATH, or leave VERIFY out",
            );
        }
        if url.is_none() && distribution_id.is_none() {
            self.missing(
                "VERIFY_URL",
                "with VERIFY and no DISTRIBUTION_ID, the URL where S3_BUCKET's prefix is served, \
                 e.g. https://www.example.com or http://my-bucket.s3-website-eu-west-1.amazonaws.com",
            );
        }
        Some(Verify {
            url: url.flatten(),
            distribution_id,
            index_document: index_document.map(str::to_string),
            timeout,
            concurrency,
            entry_documents: entry_documents?,
        })
    }

    /// An `http(s)://host[:port][/path]` URL, without the trailing `/`;
    /// no credentials, query or fragment: the check sends none.
    fn site_url(&mut self, var: &str, value: &str) -> Option<String> {
        let value = value.trim();
        let rest = value
            .strip_prefix("https://")
            .or_else(|| value.strip_prefix("http://"));
        let Some(rest) = rest else {
            self.errors.add(
                var,
                format!("{value:?} is not a URL: write it as https://host[/path]"),
            );
            return None;
        };
        let host = rest.split('/').next().unwrap_or_default();
        let problem = if host.is_empty() {
            Some("has no host")
        } else if host.contains('@') {
            Some("holds credentials, which the check never sends: remove user:password@")
        } else if rest.contains(['?', '#']) {
            Some("has a query or a fragment: give the base URL only")
        } else if rest.contains(char::is_whitespace) {
            Some("holds a space")
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.errors.add(var, format!("{value:?} {problem}"));
                None
            }
            None => Some(value.trim_end_matches('/').to_string()),
        }
    }

    fn missing(&mut self, var: &str, what: &str) {
        self.errors
            .add(var, format!("required and not set: {what}"));
    }

    /// RULES first, then the rules file: RULES_FILE, or the default name in
    /// the working directory when it exists.
    fn rules(&mut self, inline: Option<&str>, file: Option<&str>, cwd: &Path) -> Rules {
        let mut rules = Rules::default();
        if let Some(yaml) = inline {
            match rules_file::parse(yaml, "RULES") {
                Ok(r) => rules.extend(r),
                Err(e) => self.errors.add("RULES", e),
            }
        }
        let (path, required) = match file {
            Some(f) => (cwd.join(f.trim()), true),
            None => (cwd.join(rules_file::DEFAULT_FILE), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(yaml) => match rules_file::parse(&yaml, &path.display().to_string()) {
                Ok(r) => {
                    tracing::info!("Using {} rule(s) from {}", r.0.len(), path.display());
                    rules.extend(r);
                }
                Err(e) => self.errors.add("RULES_FILE", e),
            },
            Err(e) if required => self
                .errors
                .add("RULES_FILE", format!("cannot read {}: {e}", path.display())),
            Err(_) => {}
        }
        rules
    }

    fn max_delete(&mut self, value: &str) -> MaxDelete {
        let value = value.trim();
        let parsed = match value.strip_suffix('%') {
            Some(pct) => pct
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .map(|p| MaxDelete::Fraction(p / 100.0)),
            None => value.parse::<usize>().ok().map(MaxDelete::Count),
        };
        parsed.unwrap_or_else(|| {
            self.errors.add(
                "MAX_DELETE",
                format!("{value:?} is neither a number of objects (e.g. 500) nor a percentage (e.g. 50%)"),
            );
            MaxDelete::Default
        })
    }

    fn patterns(&mut self, var: &str, value: Option<&str>) -> Option<globset::GlobSet> {
        let patterns: Vec<&str> = match value {
            None => ENTRY_DOCUMENTS.to_vec(),
            Some(value) => value
                .split([',', ' ', '\n'])
                .filter(|p| !p.is_empty())
                .collect(),
        };
        entry_document_globs(&patterns)
            .map_err(|e| self.errors.add(var, format!("{e}")))
            .ok()
    }

    fn bucket(&mut self, var: &str, value: &str) -> (String, Prefix) {
        let value = value.trim();
        let value = value.strip_prefix("s3://").unwrap_or(value);
        let (bucket, prefix) = value.split_once('/').unwrap_or((value, ""));
        let prefix = prefix.trim_matches('/').to_string();
        let valid_chars = bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
        let valid_ends = bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !(3..=63).contains(&bucket.len()) || !valid_chars || !valid_ends {
            self.errors.add(
                var,
                format!(
                    "{bucket:?} is not a valid bucket name: 3-63 characters of lowercase letters, digits, '.' and '-', \
                     starting and ending with a letter or digit (write bucket or bucket/prefix)"
                ),
            );
        }
        if prefix.split('/').any(|part| part.is_empty()) && !prefix.is_empty() {
            self.errors.add(
                var,
                format!("the prefix {prefix:?} contains an empty path segment ('//')"),
            );
        }
        (bucket.to_string(), Prefix::new(&prefix))
    }

    /// MANIFEST_KEY: a name under the prefix, or `s3://bucket/key` anywhere.
    /// It must end with [`manifest::SUFFIX`], by which the pipe knows its
    /// state objects in every listing (and never deletes them).
    fn manifest_key(&mut self, value: Option<&str>, bucket: &str, prefix: &Prefix) -> Location {
        const VAR: &str = "MANIFEST_KEY";
        let value = value.map_or(manifest::DEFAULT_KEY, str::trim);
        let at = match value.strip_prefix("s3://") {
            Some(url) => {
                let (other, key) = self.bucket(VAR, url);
                Location {
                    bucket: (other != bucket).then_some(other),
                    key: Key::new(key.as_str()),
                }
            }
            None => Location::here(prefix.join(value.trim_matches('/'))),
        };
        let relative = value
            .strip_prefix("s3://")
            .unwrap_or(value)
            .trim_matches('/');
        if relative
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            self.errors.add(
                VAR,
                format!(
                    "{value:?} has an empty, '.' or '..' path segment: S3 keys are names, not paths"
                ),
            );
        }
        if !manifest::is_state_object(&at.key) {
            let name = at.key.rsplit('/').next().unwrap_or_default();
            let stem = name.strip_suffix(".json").unwrap_or(name);
            self.errors.add(
                VAR,
                format!(
                    "{value:?} must end with {suffix:?} (e.g. {stem}{suffix}), the ending by which the pipe \
                     knows its deploy manifests and never deletes them; or s3://bucket/path/name{suffix} \
                     to keep it in another bucket or prefix",
                    suffix = manifest::SUFFIX,
                ),
            );
        }
        at
    }

    fn directory(&mut self, var: &str, value: &str, cwd: &Path) -> PathBuf {
        let path = cwd.join(value.trim());
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => path,
            Ok(_) => {
                self.errors.add(
                    var,
                    format!(
                        "{} is not a directory: point it at the folder to deploy",
                        path.display()
                    ),
                );
                path
            }
            Err(e) => {
                self.errors.add(
                    var,
                    format!(
                        "{} cannot be read ({e}): build the site before this step, or fix the path",
                        path.display()
                    ),
                );
                path
            }
        }
    }

    fn one_of<T>(
        &mut self,
        var: &str,
        value: &str,
        parse: fn(&str) -> Option<T>,
        names: fn() -> String,
    ) -> Option<T> {
        let value = value.trim();
        let parsed = parse(value);
        if parsed.is_none() {
            self.errors
                .add(var, format!("{value:?} is not one of: {}", names()));
        }
        parsed
    }

    fn header(&mut self, var: &str, value: Option<&str>) -> Option<String> {
        let value = value?.trim();
        if value.chars().any(|c| c.is_control() || !c.is_ascii()) {
            self.errors.add(var, "must be printable ASCII: an HTTP header value cannot hold control or non-ASCII characters");
            return None;
        }
        Some(value.to_string())
    }

    fn boolean(&mut self, var: &str, value: Option<&str>, default: bool) -> bool {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None => default,
            Some("true" | "yes" | "on" | "1") => true,
            Some("false" | "no" | "off" | "0") => false,
            Some(other) => {
                self.errors.add(
                    var,
                    format!("{other:?} is not a boolean: use true or false (yes/no, on/off)"),
                );
                default
            }
        }
    }

    fn count(
        &mut self,
        var: &str,
        value: Option<&str>,
        range: std::ops::RangeInclusive<usize>,
        default: usize,
    ) -> usize {
        let Some(value) = value else { return default };
        match value.trim().parse::<usize>() {
            Ok(n) if range.contains(&n) => n,
            _ => {
                self.errors.add(
                    var,
                    format!(
                        "{value:?} is not a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    fn timestamp(&mut self, var: &str, value: &str) -> Option<i64> {
        dates::parse_expires(value)
            .map_err(|e| self.errors.add(var, format!("{:?} {e}", value.trim())))
            .ok()
    }

    /// `30s`, `90m`, `1h`, `7d` (humantime's units, from seconds up); `0`
    /// for none. `None` when absent or invalid (the error is recorded).
    fn duration(&mut self, var: &str, value: Option<&str>) -> Option<Duration> {
        let value = value?.trim();
        if value == "0" {
            return Some(Duration::ZERO);
        }
        humantime::parse_duration(value)
            .map_err(|e| {
                self.errors.add(
                    var,
                    format!("{value:?} is not a duration ({e}): write e.g. 30s, 90m, 1h or 7d"),
                )
            })
            .ok()
    }

    /// A timeout: a duration of at least a millisecond (none would wait
    /// forever, which a timeout exists to prevent).
    fn timeout(&mut self, var: &str, value: Option<&str>) -> Option<Duration> {
        let timeout = self.duration(var, value)?;
        if timeout < Duration::from_millis(1) {
            self.errors.add(
                var,
                "must be at least 1ms: a timeout of 0 would never end a stall",
            );
            return None;
        }
        Some(timeout)
    }

    /// DELETE_GRACE: only with the manifest, which keeps its marks.
    fn grace(&mut self, value: Option<&str>, delete: bool, manifest: bool) -> Grace {
        const VAR: &str = "DELETE_GRACE";
        let Some(value) = value else {
            return Grace::default();
        };
        let grace = Grace::parse(value).unwrap_or_else(|e| {
            self.errors.add(VAR, e);
            Grace::default()
        });
        if grace.is_zero() {
            return grace;
        }
        if !manifest {
            self.errors.add(
                VAR,
                "needs the deploy manifest, which records when each key lost its local file, \
                 but MANIFEST is false: set MANIFEST to true (it names no key in clear), or remove DELETE_GRACE",
            );
        }
        if !delete {
            tracing::warn!(
                "DELETE_GRACE is set but DELETE_FLAG is not: nothing is deleted, so nothing waits"
            );
        }
        grace
    }

    fn retry_mode(&mut self, value: Option<&str>) -> RetryMode {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("standard") => RetryMode::Standard,
            Some("adaptive") => RetryMode::Adaptive,
            // The AWS SDK for Rust has no legacy mode; standard is its successor.
            Some("legacy") => RetryMode::Standard,
            Some(other) => {
                self.errors.add(
                    "AWS_RETRY_MODE",
                    format!("{other:?} is not a retry mode: use standard or adaptive"),
                );
                RetryMode::Standard
            }
        }
    }

    fn url(&mut self, var: &str, value: &str) {
        let ok = value.starts_with("http://") || value.starts_with("https://");
        if !ok {
            self.errors.add(
                var,
                format!("{value:?} is not a URL: write it as https://host[:port]"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn base(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v = vars(&[
            ("S3_BUCKET", "my-bucket"),
            ("LOCAL_PATH", "."),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        v.extend(vars(extra));
        v
    }

    fn cwd() -> PathBuf {
        std::env::temp_dir()
    }

    /// Every variable the pipe reads is documented in `--help` and the README,
    /// except the context that Bitbucket and the AWS chain provide.
    #[test]
    fn every_variable_is_documented() {
        let fields = format!("{:?}", RawEnv::default());
        let readme = include_str!("../../README.md");
        let context = [
            "BITBUCKET_STEP_OIDC_TOKEN",
            "BITBUCKET_REPO_SLUG",
            "BITBUCKET_BUILD_NUMBER",
            "BITBUCKET_PIPE_SHARED_STORAGE_DIR",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ];
        let names: Vec<String> = fields
            .split(['{', ',', '}'])
            .filter_map(|f| f.split_once(':'))
            .map(|(name, _)| name.trim().to_uppercase())
            .collect();
        assert!(names.len() > 30, "{names:?}");
        for name in names.iter().filter(|n| !context.contains(&n.as_str())) {
            assert!(
                crate::help::HELP.contains(name.as_str()),
                "{name} is missing from --help"
            );
            assert!(
                readme.contains(name.as_str()),
                "{name} is missing from the README"
            );
        }
    }

    #[test]
    fn verify_keeps_its_own_concurrency_unless_concurrency_is_set() {
        let with = |extra: &[(&str, &str)]| {
            let mut vars = vec![("VERIFY", "true"), ("DISTRIBUTION_ID", "E1")];
            vars.extend_from_slice(extra);
            let c = Config::from_vars(base(&vars), &cwd()).unwrap();
            (c.deploy.unwrap().concurrency, c.verify.unwrap().concurrency)
        };
        assert_eq!(with(&[]), (DEFAULT_CONCURRENCY, DEFAULT_VERIFY_CONCURRENCY));
        assert_eq!(with(&[("CONCURRENCY", "100")]), (100, 100));
    }

    #[test]
    fn minimal_configuration() {
        let c = Config::from_vars(base(&[]), &cwd()).unwrap();
        let d = c.deploy.clone().unwrap();
        assert_eq!(d.bucket, "my-bucket");
        assert!(d.prefix.is_root());
        assert_eq!(c.region, "eu-west-1");
        assert!(!d.delete && !d.force_path_style);
        assert_eq!(d.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(d.object, ObjectSettings::default());
    }

    #[test]
    fn bucket_with_prefix_and_slashes() {
        for (input, bucket, prefix) in [
            ("b-1/site", "b-1", "site"),
            ("b-1/site/", "b-1", "site"),
            ("b-1/a/b/", "b-1", "a/b"),
            ("s3://b-1/a", "b-1", "a"),
            ("b-1/", "b-1", ""),
        ] {
            let c = Config::from_vars(base(&[("S3_BUCKET", input)]), &cwd()).unwrap();
            let d = c.deploy.clone().unwrap();
            assert_eq!(
                (d.bucket.as_str(), d.prefix.as_str()),
                (bucket, prefix),
                "{input}"
            );
        }
    }

    #[test]
    fn all_errors_are_collected() {
        let e = Config::from_vars(
            vars(&[
                ("S3_BUCKET", "Bad_Bucket"),
                ("LOCAL_PATH", "/no/such/folder"),
                ("ACL", "public"),
                ("STORAGE_CLASS", "cold"),
                ("DELETE_FLAG", "maybe"),
                ("EXPIRES", "tomorrow"),
            ]),
            &cwd(),
        )
        .unwrap_err();
        let vars: Vec<&str> = e.0.keys().map(String::as_str).collect();
        assert_eq!(
            vars,
            [
                "ACL",
                "AWS_DEFAULT_REGION",
                "DELETE_FLAG",
                "EXPIRES",
                "LOCAL_PATH",
                "S3_BUCKET",
                "STORAGE_CLASS"
            ]
        );
        let text = e.to_string();
        assert!(
            text.contains("ACL:\n- \"public\" is not one of: private, public-read"),
            "{text}"
        );
        assert!(
            text.contains("DELETE_FLAG:\n- \"maybe\" is not a boolean"),
            "{text}"
        );
    }

    #[test]
    fn booleans_in_any_case_and_empty_means_default() {
        for (value, expected) in [
            ("TRUE", true),
            ("yes", true),
            ("On", true),
            ("false", false),
            ("NO", false),
            ("off", false),
            ("", false),
        ] {
            let c = Config::from_vars(base(&[("DELETE_FLAG", value)]), &cwd()).unwrap();
            let d = c.deploy.clone().unwrap();
            assert_eq!(d.delete, expected, "{value}");
        }
    }

    #[test]
    fn aws_region_is_accepted_and_endpoint_turns_on_path_style() {
        let mut v = vars(&[
            ("S3_BUCKET", "b-1"),
            ("LOCAL_PATH", "."),
            ("AWS_REGION", "us-east-2"),
        ]);
        v.extend(vars(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]));
        let c = Config::from_vars(v, &cwd()).unwrap();
        let d = c.deploy.clone().unwrap();
        assert_eq!(c.region, "us-east-2");
        assert!(d.force_path_style);
        let c = Config::from_vars(
            base(&[
                ("AWS_ENDPOINT_URL_S3", "http://h:1"),
                ("AWS_S3_FORCE_PATH_STYLE", "false"),
            ]),
            &cwd(),
        )
        .unwrap();
        let d = c.deploy.clone().unwrap();
        assert!(!d.force_path_style);
    }

    #[test]
    fn local_path_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let e = Config::from_vars(base(&[("LOCAL_PATH", "f")]), dir.path()).unwrap_err();
        assert!(e.0["LOCAL_PATH"][0].contains("is not a directory"));
        let c = Config::from_vars(base(&[("LOCAL_PATH", ".")]), dir.path()).unwrap();
        let d = c.deploy.clone().unwrap();
        assert_eq!(d.local_path, dir.path().join("."));
    }

    #[test]
    fn expires_is_read_as_aws_cli_reads_it() {
        let c =
            Config::from_vars(base(&[("EXPIRES", "2030-01-31T12:00:00+0200")]), &cwd()).unwrap();
        // 10:00 UTC: the offset is two hours, not two hundred.
        assert_eq!(c.deploy.unwrap().object.expires, Some(1_896_084_000));
        for bad in [
            "2030-01-31T12:00:00+25:00",
            "2030-01-31T12:00:00+02:75",
            "2030-13-01",
        ] {
            let e = Config::from_vars(base(&[("EXPIRES", bad)]), &cwd()).unwrap_err();
            assert!(e.0["EXPIRES"][0].starts_with(&format!("{bad:?} ")), "{e}");
        }
        let e = Config::from_vars(base(&[("EXTRA_ARGS", "--expires soon")]), &cwd()).unwrap_err();
        assert!(
            e.0["EXTRA_ARGS"][0].starts_with("--expires \"soon\" is not a date"),
            "{e}"
        );
        assert!(!e.to_string().contains("Jiff"), "{e}");
    }

    #[test]
    fn a_variable_and_the_flag_that_overrides_it_are_both_checked() {
        // The flag wins...
        let c = Config::from_vars(
            base(&[("ACL", "private"), ("EXTRA_ARGS", "--acl public-read")]),
            &cwd(),
        )
        .unwrap();
        assert_eq!(c.deploy.unwrap().object.acl, Some(Acl::PublicRead));
        // ...but a bad value is reported under its own name, either way.
        let e = Config::from_vars(
            base(&[
                ("ACL", "bogus"),
                ("EXPIRES", "2031-01-01"),
                ("EXTRA_ARGS", "--acl private --expires 2030-13-01"),
            ]),
            &cwd(),
        )
        .unwrap_err();
        assert_eq!(e.0.keys().collect::<Vec<_>>(), ["ACL", "EXTRA_ARGS"]);
        assert!(
            e.0["EXTRA_ARGS"][0].starts_with("--expires \"2030-13-01\""),
            "{e}"
        );
    }

    #[test]
    fn cloudfront_variables_are_checked_without_a_distribution() {
        let e = Config::from_vars(
            base(&[
                ("WAIT", "perhaps"),
                ("PATHS", "nope"),
                ("WAIT_TIMEOUT", "-5"),
            ]),
            &cwd(),
        )
        .unwrap_err();
        assert_eq!(
            e.0.keys().collect::<Vec<_>>(),
            ["PATHS", "WAIT", "WAIT_TIMEOUT"]
        );
        let c = Config::from_vars(base(&[("PATHS", "/index.html")]), &cwd()).unwrap();
        assert!(c.cdn.is_none());
    }

    #[test]
    fn a_report_file_that_cannot_be_written_is_a_validation_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a-file"), "x").unwrap();
        for bad in [".", "a-file/r.json", "a-file/sub/r.json"] {
            let e = Config::from_vars(base(&[("REPORT_FILE", bad)]), dir.path()).unwrap_err();
            assert!(e.0.contains_key("REPORT_FILE"), "{bad}: {e}");
        }
        for good in ["r.json", "new/folder/r.json"] {
            Config::from_vars(base(&[("REPORT_FILE", good)]), dir.path()).unwrap();
        }
    }

    #[test]
    fn report_file_is_found_without_a_valid_configuration() {
        let vars: BTreeMap<String, String> = vars(&[
            ("BITBUCKET_PIPE_SHARED_STORAGE_DIR", "/shared"),
            ("S3_BUCKET", "Bad_Bucket"),
        ])
        .into_iter()
        .collect();
        assert_eq!(
            report_file(&vars, Path::new("/w")),
            Some(PathBuf::from("/shared/s3-cloudfront-deploy/report.json"))
        );
        let mut with_file = vars.clone();
        with_file.insert("REPORT_FILE".into(), "out/r.json".into());
        assert_eq!(
            report_file(&with_file, Path::new("/w")),
            Some(PathBuf::from("/w/out/r.json"))
        );
    }

    #[test]
    fn retries_timeouts_and_the_sweep_age() {
        let c = Config::from_vars(base(&[]), &cwd()).unwrap();
        assert_eq!(c.network, DEFAULT_NETWORK);
        let d = c.deploy.unwrap();
        assert_eq!(d.abort_incomplete_after, Some(Duration::from_secs(3600)));
        let c = Config::from_vars(
            base(&[
                ("AWS_MAX_ATTEMPTS", "4"),
                ("AWS_RETRY_MODE", "Adaptive"),
                ("CONNECT_TIMEOUT", "2s"),
                ("READ_TIMEOUT", "5m"),
                ("ABORT_INCOMPLETE_UPLOADS_AFTER", "0"),
            ]),
            &cwd(),
        )
        .unwrap();
        assert_eq!(
            c.network,
            Network {
                max_attempts: 4,
                retry_mode: RetryMode::Adaptive,
                connect_timeout: Duration::from_secs(2),
                read_timeout: Duration::from_secs(300),
            }
        );
        assert_eq!(c.deploy.unwrap().abort_incomplete_after, None);
        let e = Config::from_vars(
            base(&[
                ("AWS_MAX_ATTEMPTS", "0"),
                ("AWS_RETRY_MODE", "forever"),
                ("READ_TIMEOUT", "soon"),
                ("CONNECT_TIMEOUT", "0s"),
                ("ABORT_INCOMPLETE_UPLOADS_AFTER", "1 fortnight"),
            ]),
            &cwd(),
        )
        .unwrap_err();
        let vars: Vec<&str> = e.0.keys().map(String::as_str).collect();
        assert_eq!(
            vars,
            [
                "ABORT_INCOMPLETE_UPLOADS_AFTER",
                "AWS_MAX_ATTEMPTS",
                "AWS_RETRY_MODE",
                "CONNECT_TIMEOUT",
                "READ_TIMEOUT"
            ]
        );
    }

    #[test]
    fn verify_needs_a_url_or_a_distribution_and_waits_for_the_invalidation() {
        let e = Config::from_vars(base(&[("VERIFY", "true")]), &cwd()).unwrap_err();
        assert_eq!(e.0.keys().collect::<Vec<_>>(), ["VERIFY_URL"]);
        assert!(
            e.0["VERIFY_URL"][0].starts_with("required and not set"),
            "{e}"
        );

        let c = Config::from_vars(
            base(&[("VERIFY", "true"), ("DISTRIBUTION_ID", "E1, E2")]),
            &cwd(),
        )
        .unwrap();
        let v = c.verify.unwrap();
        assert_eq!((v.url, v.distribution_id.as_deref()), (None, Some("E1")));
        assert_eq!(v.timeout, DEFAULT_VERIFY_TIMEOUT);
        assert!(v.entry_documents.is_match("index.html"));
        assert!(c.cdn.unwrap().wait, "VERIFY implies WAIT");

        let c = Config::from_vars(
            base(&[
                ("VERIFY", "yes"),
                ("VERIFY_URL", "https://www.example.com/docs/"),
                ("VERIFY_TIMEOUT", "90s"),
                ("INDEX_DOCUMENT", "index.html"),
                ("ORDERED_DEPLOY", "false"),
            ]),
            &cwd(),
        )
        .unwrap();
        let v = c.verify.unwrap();
        assert_eq!(v.url.as_deref(), Some("https://www.example.com/docs"));
        assert_eq!(v.timeout, Duration::from_secs(90));
        assert_eq!(v.index_document.as_deref(), Some("index.html"));
        assert!(
            v.entry_documents.is_match("about.html"),
            "with ORDERED_DEPLOY off too"
        );
        assert!(c.cdn.is_none());
    }

    #[test]
    fn verify_checks_a_deploy_and_its_url_carries_nothing_secret() {
        let e = Config::from_vars(
            vars(&[
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("DISTRIBUTION_ID", "E1"),
                ("VERIFY", "true"),
            ]),
            &cwd(),
        )
        .unwrap_err();
        assert_eq!(e.0.keys().collect::<Vec<_>>(), ["VERIFY"]);
        for (url, problem) in [
            ("www.example.com", "is not a URL"),
            ("https://", "has no host"),
            ("https://user:pw@www.example.com", "holds credentials"),
            ("https://www.example.com/?v=1", "has a query"),
        ] {
            let e = Config::from_vars(base(&[("VERIFY", "true"), ("VERIFY_URL", url)]), &cwd())
                .unwrap_err();
            assert!(e.0["VERIFY_URL"][0].contains(problem), "{url}: {e}");
        }
        let e = Config::from_vars(
            base(&[
                ("VERIFY", "maybe"),
                ("VERIFY_TIMEOUT", "soon"),
                ("INDEX_DOCUMENT", "docs/index.html"),
            ]),
            &cwd(),
        )
        .unwrap_err();
        assert_eq!(
            e.0.keys().collect::<Vec<_>>(),
            ["INDEX_DOCUMENT", "VERIFY", "VERIFY_TIMEOUT"]
        );
    }

    #[test]
    fn header_values_must_be_printable_ascii() {
        let e = Config::from_vars(base(&[("CACHE_CONTROL", "max-age=1\nx")]), &cwd()).unwrap_err();
        assert!(e.0.contains_key("CACHE_CONTROL"));
    }

    #[test]
    fn the_manifest_lives_under_the_prefix_or_anywhere_by_url() {
        let at = |extra: &[(&str, &str)]| {
            let mut vars = base(extra);
            vars.push(("S3_BUCKET".into(), "my-bucket/site".into()));
            let c = Config::from_vars(vars, &cwd()).unwrap();
            c.deploy.unwrap().manifest.map(|m| m.to_string())
        };
        assert_eq!(
            at(&[]).as_deref(),
            Some("site/.s3-cloudfront-deploy-manifest.json")
        );
        assert_eq!(at(&[("MANIFEST", "false")]), None);
        for (key, location) in [
            (
                "/meta/a.s3-cloudfront-deploy-manifest.json",
                "site/meta/a.s3-cloudfront-deploy-manifest.json",
            ),
            (
                "s3://my-bucket/state/site.s3-cloudfront-deploy-manifest.json",
                "state/site.s3-cloudfront-deploy-manifest.json",
            ),
            (
                "s3://state-bucket/x/site.s3-cloudfront-deploy-manifest.json",
                "s3://state-bucket/x/site.s3-cloudfront-deploy-manifest.json",
            ),
        ] {
            assert_eq!(at(&[("MANIFEST_KEY", key)]).as_deref(), Some(location));
        }
    }

    #[test]
    fn the_manifest_key_keeps_the_suffix_that_marks_state_objects() {
        for key in [
            "meta/deploy.json",
            "s3://state-bucket/",
            "s3://Bad_Bucket/x.s3-cloudfront-deploy-manifest.json",
            "../up.s3-cloudfront-deploy-manifest.json",
            "a//b.s3-cloudfront-deploy-manifest.json",
        ] {
            let e = Config::from_vars(base(&[("MANIFEST_KEY", key)]), &cwd()).unwrap_err();
            assert!(e.0.contains_key("MANIFEST_KEY"), "{key}: {e}");
        }
        let e =
            Config::from_vars(base(&[("MANIFEST_KEY", "meta/deploy.json")]), &cwd()).unwrap_err();
        assert!(
            e.to_string()
                .contains("deploy.s3-cloudfront-deploy-manifest.json"),
            "{e}"
        );
    }

    #[test]
    fn delete_grace_needs_the_manifest() {
        let d = Config::from_vars(base(&[("DELETE_GRACE", "7d, 5 deploys")]), &cwd())
            .unwrap()
            .deploy
            .unwrap();
        assert_eq!(d.grace.time, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(d.grace.deploys, 5);
        assert_eq!(d.now, None);
        let d = Config::from_vars(base(&[]), &cwd())
            .unwrap()
            .deploy
            .unwrap();
        assert!(d.grace.is_zero());
        // Zero needs nothing to track.
        let c = Config::from_vars(
            base(&[("DELETE_GRACE", "0"), ("MANIFEST", "false")]),
            &cwd(),
        );
        assert!(c.is_ok());
        let e = Config::from_vars(
            base(&[("DELETE_GRACE", "3 deploys"), ("MANIFEST", "false")]),
            &cwd(),
        )
        .unwrap_err();
        assert!(e.0["DELETE_GRACE"][0].contains("MANIFEST is false"), "{e}");
        let e = Config::from_vars(base(&[("DELETE_GRACE", "a while")]), &cwd()).unwrap_err();
        assert!(e.0["DELETE_GRACE"][0].starts_with("\"a while\" "), "{e}");
    }

    #[test]
    fn the_clock_is_set_only_by_its_documented_variable() {
        let d = Config::from_vars(
            base(&[("S3_CLOUDFRONT_DEPLOY_NOW", "2030-01-01T01:00:00Z")]),
            &cwd(),
        )
        .unwrap()
        .deploy
        .unwrap();
        assert_eq!(d.now, Some(1_893_459_600));
        let e =
            Config::from_vars(base(&[("S3_CLOUDFRONT_DEPLOY_NOW", "later")]), &cwd()).unwrap_err();
        assert!(e.0.contains_key("S3_CLOUDFRONT_DEPLOY_NOW"), "{e}");
    }
}
