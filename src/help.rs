//! `--help` and `--version`: the only command-line arguments; everything else
//! is configured through environment variables, as pipes are.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const HELP: &str = "\
Deploy a folder to Amazon S3, uploading only what changed: a Bitbucket Pipe.
Configured with environment variables only.

Usage: s3-cloudfront-deploy [--help | --version]

Deploy:
  S3_BUCKET (required)          bucket, or bucket/prefix
  LOCAL_PATH (required)         folder to deploy, relative to the working directory or absolute
  AWS_DEFAULT_REGION (required) the bucket's region (AWS_REGION is accepted too)
  DELETE_FLAG                   delete remote objects with no local file [default: false]
  DELETE_GRACE                  keep them this long first: 90m, 7d, 3 deploys, or both (7d, 5 deploys:
                                both must pass); needs MANIFEST [default: 0, delete at once]
  ACL                           canned ACL for uploaded objects [default: none]
  STORAGE_CLASS                 storage class for uploaded objects [default: the bucket's]
  CACHE_CONTROL                 Cache-Control for uploaded objects [default: none]
  EXPIRES                       ISO-8601 time, sent as the Expires header [default: none]
  CONTENT_ENCODING              Content-Encoding for uploaded objects [default: none]
  CONCURRENCY                   requests in flight, parts included, 1-256 [default: 128]
  EXTRA_ARGS                    aws s3 sync flags: --exclude, --include, --dryrun, --delete, ... [default: none]
  DRY_RUN                       print the plan, change nothing [default: false]
  MAX_DELETE                    most deletes per deploy: a number or a percentage
                                [default: refuse deleting over half the objects and more than the folder holds]
  ALLOW_DELETE_ALL              let DELETE_FLAG empty the prefix when LOCAL_PATH is empty [default: false]
  ORDERED_DEPLOY                upload entry documents last, then delete [default: true]
  PRE_EXECUTION_SCRIPT          refused: the image has no shell; run it in the step's script instead
  ENTRY_DOCUMENTS               entry document patterns
                                [default: *.html,*.htm,sitemap*.xml,robots.txt,sw.js,service-worker.js,*.webmanifest,manifest.json]
  RULES_FILE                    per-file rules (headers, compress, ignore) in YAML
                                [default: .s3-cloudfront-deploy.yml in the working directory, if present]
  RULES                         the same rules inline, applied before the file's [default: none]
  PRECOMPRESSED                 serve x from x.br / x.gz, with its Content-Encoding; the siblings
                                stay published under their own names too [default: false]
  MANIFEST                      keep a deploy manifest (keys digested, none in clear), for header-only
                                fixes and exact comparisons without HeadObject [default: true]
  MANIFEST_KEY                  its name under the prefix, or s3://bucket/path/name elsewhere; it must
                                end with .s3-cloudfront-deploy-manifest.json
                                [default: .s3-cloudfront-deploy-manifest.json]
  REPORT_FILE                   write the JSON report here
                                [default: $BITBUCKET_PIPE_SHARED_STORAGE_DIR/s3-cloudfront-deploy/report.json]
  DEBUG                         print every decision [default: false]
  ABORT_INCOMPLETE_UPLOADS_AFTER  abort multipart uploads under the prefix started longer ago
                                than this, e.g. 30s, 1h, 7d; 0 never [default: 1h]

Credentials (first that applies):
  AWS_OIDC_ROLE_ARN             role to assume with BITBUCKET_STEP_OIDC_TOKEN (oidc: true)
  AWS_ROLE_SESSION_NAME         [default: bitbucket-<repo slug>-<build number>]
  AWS_ROLE_DURATION_SECONDS     900-43200 [default: 3600]
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
  otherwise the AWS chain: AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, container, instance

CloudFront:
  DISTRIBUTION_ID               distribution(s) to invalidate; alone, invalidate without deploying [default: none]
  PATHS                         paths to invalidate [default: what changed; /* when only invalidating]
  WAIT                          wait for the invalidation to complete [default: false]
  WAIT_TIMEOUT                  seconds to wait and retry [default: 900]
  INVALIDATION_MAX_PATHS        paths before folders collapse into wildcards, 1-3000 [default: 15]
  INVALIDATE                    false keeps DISTRIBUTION_ID but invalidates nothing [default: true]

Verify (after the deploy and its invalidation, which VERIFY waits for):
  VERIFY                        request what the deploy changed through the site, as a browser does,
                                and fail when it is not served as deployed [default: false]
  VERIFY_URL                    where S3_BUCKET's prefix is served, e.g. https://www.example.com
                                [default: https://<the distribution's domain>, through its origin path]
  VERIFY_TIMEOUT                the whole check, rechecks included, e.g. 2m [default: 5m]
  INDEX_DOCUMENT                the site serves dir/<name> at dir/ (S3 website endpoint, CloudFront
                                Function): also check it there, e.g. index.html [default: none]

Retries and timeouts (every AWS request):
  AWS_MAX_ATTEMPTS              attempts per request, the first included, 1-100 [default: 10]
  AWS_RETRY_MODE                standard, or adaptive (also slows down on 503 SlowDown) [default: standard]
  CONNECT_TIMEOUT               to open a connection, e.g. 5s [default: 10s]
  READ_TIMEOUT                  for a request's answer, its body sent included (an 8 MiB part) [default: 60s]

Endpoints:
  AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL_CLOUDFRONT
  AWS_S3_FORCE_PATH_STYLE       [default: true with a custom endpoint, else false]

For tests:
  S3_CLOUDFRONT_DEPLOY_NOW      the deploy's clock for DELETE_GRACE, as EXPIRES is written
                                [default: the system's clock]

Exit status: 0 on success, 1 on any failure, 143 or 130 when stopped by SIGTERM or SIGINT
(a second signal exits at once).
";

/// [`handle`] of this process's arguments (not UTF-8: U+FFFD in place of
/// the bytes, rather than a panic).
pub fn command_line() -> Option<u8> {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    handle(&args)
}

/// Handles the command line; `Some(exit code)` when the run is over.
pub fn handle(args: &[String]) -> Option<u8> {
    match args.first().map(String::as_str) {
        None => None,
        Some("--help" | "-h") => {
            print!("{HELP}");
            Some(0)
        }
        Some("--version" | "-V") => {
            println!("s3-cloudfront-deploy {VERSION}");
            Some(0)
        }
        Some(other) => {
            eprintln!(
                "✖ unknown argument {other:?}: this pipe is configured with environment variables (see --help)"
            );
            Some(1)
        }
    }
}
