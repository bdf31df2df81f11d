//! Deploys a folder to S3 and invalidates CloudFront, as a Bitbucket Pipe.
//!
//! configuration → credentials → local scan ‖ remote listing → hashes →
//! plan → execution → report.

mod auth;
mod compare;
mod config;
mod content_type;
mod deploy;
mod error;
mod local;
mod plan;
mod remote;
mod report;

use std::process::ExitCode;
use std::time::Instant;

use config::Config;
use error::PipeError;
use remote::ObjectStore;
use remote::s3::S3Store;

#[tokio::main]
async fn main() -> ExitCode {
    report::init(config::debug_requested());
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(errors) => return fail(&PipeError::from(errors)),
    };
    match run(&config).await {
        Ok(summary) => {
            report::success(&summary);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(error: &PipeError) -> ExitCode {
    report::failure(error);
    ExitCode::FAILURE
}

async fn run(config: &Config) -> Result<String, PipeError> {
    let started = Instant::now();
    tracing::info!(
        "Deploying {} to {}",
        config.local_path.display(),
        config.destination()
    );
    let sdk = auth::load(&config.region, &config.credentials).await?;
    let store = S3Store::new(&sdk, &config.bucket, config.force_path_style);

    let root = config.local_path.clone();
    let prefix = config.prefix.clone();
    let scan = tokio::task::spawn_blocking(move || local::scan(&root, &prefix));
    let (local, remote) = tokio::join!(scan, store.list(&config.prefix));
    let local = local.expect("scanning does not panic")?;
    let remote = remote?;
    tracing::info!(
        "Found {} local files and {} remote objects",
        local.len(),
        remote.len()
    );

    let local_etags = compare::local_etags(&store, plan::hashes_needed(&local, &remote)).await?;
    let entry_documents =
        plan::entry_document_globs(plan::ENTRY_DOCUMENTS).expect("built-in patterns are valid");
    let plan = plan::plan(&plan::PlanInput {
        local: &local,
        remote: &remote,
        local_etags: &local_etags,
        settings: &config.object,
        delete: config.delete,
        entry_documents: &entry_documents,
    });
    report::plan(&plan, &config.destination());

    let done = deploy::execute(&store, &plan, config.concurrency).await?;
    Ok(format!(
        "Deployment successful: {} uploaded ({}), {} unchanged, {} deleted in {}",
        done.uploaded,
        report::bytes(done.uploaded_bytes),
        plan.skips.len(),
        done.deleted,
        report::seconds(started.elapsed())
    ))
}
