//! Deploys a folder to S3 and invalidates CloudFront, as a Bitbucket Pipe.
//!
//! configuration → credentials → local scan ‖ remote listing → hashes →
//! plan → execution → CDN invalidation → report.

mod auth;
mod cdn;
mod compare;
mod compress;
mod config;
mod content_type;
mod deploy;
mod error;
mod extra_args;
mod filter;
mod help;
mod local;
mod manifest;
mod plan;
mod remote;
mod report;
mod rules;
mod sdk_error;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use config::Config;
use error::PipeError;
use remote::ObjectStore;
use remote::s3::S3Store;

#[tokio::main]
async fn main() -> ExitCode {
    if let Some(code) = help::handle(&std::env::args().skip(1).collect::<Vec<_>>()) {
        return ExitCode::from(code);
    }
    let logging = report::init(config::debug_requested());
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(errors) => {
            report::failure(&errors.into());
            return ExitCode::FAILURE;
        }
    };
    if config.quiet {
        logging.quiet();
    }
    let mut record = report::Record::new();
    let result = run(&config, &mut record).await;
    record.success = result.is_ok();
    record.error = result.as_ref().err().map(|e| e.to_string());
    if let Some(path) = &config.report_file {
        match record.write(path) {
            Ok(()) => tracing::info!("Report written to {}", path.display()),
            Err(e) => tracing::warn!("Could not write the report to {}: {e}", path.display()),
        }
    }
    match result {
        Ok(lines) => {
            if config.deploy.is_some() {
                report::summary(&record);
            }
            lines.iter().for_each(|line| report::success(line));
            ExitCode::SUCCESS
        }
        Err(e) => {
            report::failure(&e);
            ExitCode::FAILURE
        }
    }
}

/// Every stage in order, recorded as it goes; returns the success lines.
async fn run(config: &Config, record: &mut report::Record) -> Result<Vec<String>, PipeError> {
    let started = Instant::now();
    let sdk = auth::load(&config.region, &config.credentials).await?;
    record.timed("credentials", started);
    let mut lines = Vec::new();
    let mut changed = None;
    if let Some(target) = &config.deploy {
        let (plan, done) = deploy_folder(&sdk, target, record).await?;
        lines.push(if target.dry_run {
            format!(
                "Dry run: {} to upload ({}), {} unchanged, {} to delete; nothing was changed",
                plan.uploads.len(),
                report::bytes(plan.upload_bytes()),
                plan.skips.len(),
                plan.deletes.len()
            )
        } else {
            format!(
                "Deployment successful: {} uploaded ({}), {}{} unchanged, {} deleted in {}",
                done.uploaded,
                report::bytes(done.uploaded_bytes),
                if done.copied > 0 {
                    format!("{} headers updated, ", done.copied)
                } else {
                    String::new()
                },
                plan.skips.len(),
                done.deleted,
                report::seconds(started.elapsed())
            )
        });
        changed = Some((target, plan.changed_keys()));
    }
    if let Some(settings) = &config.cdn {
        let since = Instant::now();
        let cdn = cdn::cloudfront::CloudFront::new(&sdk);
        let changed = changed
            .as_ref()
            .map(|(t, keys)| (t.bucket.as_str(), t.prefix.as_str(), keys.as_slice()));
        let dry_run = config.deploy.as_ref().is_some_and(|d| d.dry_run);
        let done = cdn::invalidate(&cdn, settings, changed, dry_run, cdn::PACING)
            .await
            .map_err(|source| PipeError::Invalidate {
                deployed: config.deploy.is_some(),
                source,
            })?;
        record.timed("invalidate", since);
        for inv in done {
            for id in &inv.ids {
                lines.push(format!(
                    "Successfully created a cloudfront invalidation: {id}"
                ));
            }
            if inv.completed {
                lines.push(format!(
                    "Invalidation completed on {} ({})",
                    inv.distribution_id, inv.domain_name
                ));
            }
            record.invalidations.push(report::InvalidationRecord {
                distribution_id: inv.distribution_id,
                domain_name: inv.domain_name,
                ids: inv.ids,
                paths: inv.paths,
                completed: inv.completed,
            });
        }
    }
    record.timed("total", started);
    Ok(lines)
}

async fn deploy_folder(
    sdk: &aws_config::SdkConfig,
    target: &config::Deploy,
    record: &mut report::Record,
) -> Result<(plan::Plan, deploy::Outcome), PipeError> {
    tracing::info!(
        "Deploying {} to {}",
        target.local_path.display(),
        target.destination()
    );
    record.destination = Some(target.destination());
    record.dry_run = target.dry_run;
    let store = S3Store::new(sdk, &target.bucket, target.force_path_style);

    let since = Instant::now();
    let (root, prefix, follow) = (
        target.local_path.clone(),
        target.prefix.clone(),
        target.follow_symlinks,
    );
    let scan = tokio::task::spawn_blocking(move || local::scan(&root, &prefix, follow));
    let (local, remote) = tokio::join!(scan, store.list(&target.prefix));
    let mut remote = remote?;
    let previous = match &target.manifest_key {
        Some(key) => manifest::load(&store, key, &mut remote).await?,
        None => None,
    };
    let (local, remote, excluded) = plan::apply_filters(
        local.expect("scanning does not panic")?,
        remote,
        &target.prefix,
        &target.filters,
        &target.rules,
    );
    record.timed("scan and list", since);

    // Compressed copies live in a temporary folder until the upload is over.
    let since = Instant::now();
    let (rules, precompressed) = (target.rules.clone(), target.precompressed);
    let prepared =
        tokio::task::spawn_blocking(move || compress::prepare(local, &rules, precompressed))
            .await
            .expect("compression does not panic")?;
    let local = &prepared.files;
    record.timed("compress", since);
    tracing::info!(
        "Found {} local files and {} remote objects{}",
        local.len(),
        remote.len(),
        if excluded > 0 {
            format!(" ({excluded} excluded by filters)")
        } else {
            String::new()
        }
    );

    let since = Instant::now();
    let listed = remote
        .iter()
        .map(|r| (r.key.as_str(), r.etag.as_str()))
        .collect();
    let trusted = previous
        .as_ref()
        .map(|m| m.trusted(&listed))
        .unwrap_or_default();
    let needs = plan::hashes_needed(local, &remote, target.size_only, &trusted);
    let hashes = compare::local_etags(&store, needs).await?;
    record.timed("hash", since);
    let entry_documents = target
        .entry_documents
        .as_ref()
        .map(|patterns| plan::entry_document_globs(patterns).expect("validated in config"));
    let no_heads = HashMap::new();
    let mut input = plan::PlanInput {
        local,
        remote: &remote,
        local_etags: &hashes,
        settings: &target.object,
        delete: target.delete,
        size_only: target.size_only,
        entry_documents: entry_documents.as_ref(),
        rules: &target.rules,
        trusted: &trusted,
        remote_headers: &no_heads,
    };
    // Headers of unchanged objects the manifest cannot vouch for.
    let heads =
        compare::remote_headers(&store, plan::heads_needed(&input), target.concurrency).await?;
    input.remote_headers = &heads;
    let plan = plan::plan(&input);
    report::plan(&plan, &target.destination());
    plan::check_deletes(
        &plan,
        remote.len(),
        local.len(),
        &target.prefix,
        target.max_delete,
        target.allow_delete_all,
    )?;

    let done = if target.dry_run {
        report::dry_run(&plan);
        deploy::Outcome::default()
    } else {
        let progress = target.progress.then_some(deploy::PROGRESS_EVERY);
        let result = deploy::execute(&store, &plan, target.concurrency, progress).await;
        if let Ok(done) = &result {
            record.timings.push(report::Timing {
                phase: "upload",
                seconds: done.upload_time.as_secs_f64(),
            });
            record.timings.push(report::Timing {
                phase: "delete",
                seconds: done.delete_time.as_secs_f64(),
            });
        }
        result?
    };
    if let (Some(key), false) = (&target.manifest_key, target.dry_run) {
        let evidence = manifest::Evidence {
            trusted: &trusted,
            remote: &remote,
            hashes,
            remote_headers: &heads,
        };
        manifest::update(
            &store,
            key,
            previous.as_ref(),
            local,
            &plan,
            &done,
            evidence,
        )
        .await?;
    }
    report::record_plan(record, &plan, &done, &remote, excluded);
    Ok((plan, done))
}
