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
  ACL                           canned ACL for uploaded objects [default: none]
  STORAGE_CLASS                 storage class for uploaded objects [default: the bucket's]
  CACHE_CONTROL                 Cache-Control for uploaded objects [default: none]
  EXPIRES                       ISO-8601 time, sent as the Expires header [default: none]
  CONTENT_ENCODING              Content-Encoding for uploaded objects [default: none]
  CONCURRENCY                   requests in flight, 1-256 [default: 16]
  DEBUG                         print every decision [default: false]

Credentials (first that applies):
  AWS_OIDC_ROLE_ARN             role to assume with BITBUCKET_STEP_OIDC_TOKEN (oidc: true)
  AWS_ROLE_SESSION_NAME         [default: bitbucket-<repo slug>-<build number>]
  AWS_ROLE_DURATION_SECONDS     900-43200 [default: 3600]
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
  otherwise the AWS chain: AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, container, instance

Endpoints:
  AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_STS
  AWS_S3_FORCE_PATH_STYLE       [default: true with a custom endpoint, else false]

Exit status: 0 on success, 1 on any failure.
";

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
