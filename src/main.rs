//! Deploys a folder to S3 and invalidates CloudFront, as a Bitbucket Pipe.
//! Wiring only: configuration → credentials → S3, CloudFront, the site → the
//! run (heard by console and record, stoppable by signals) → the exit code.

mod config;
mod edge;
mod etag;
mod help;
mod model;
mod plan;
mod report;
mod run;
mod stop;
#[cfg(test)]
mod tests;

use edge::{auth, cloudfront::CloudFront, s3::S3Store, site::HttpSite};
use run::events::{Event, Listeners, Sink, timed};
use run::{PACING, PipeError, unless_stopped};
use std::process::ExitCode;

fn main() -> ExitCode {
    edge::allocator::configure();
    stop::run_then_leave(pipe())
}

async fn pipe() -> ExitCode {
    if let Some(code) = help::command_line() {
        return ExitCode::from(code);
    }
    let (stopper, stop) = stop::channel();
    tokio::spawn(edge::signals::listen(stopper));
    let console = report::Console::init(config::debug_requested());
    let record = report::Record::new(config::report_file_from_env());
    let listeners = Listeners(vec![&record, &console]);
    let result = wire(&console, &stop, &listeners).await;
    listeners.event(&Event::Finished(&result));
    report::exit_code(&result)
}

async fn wire(
    console: &report::Console,
    stop: &stop::Stop,
    sink: &Listeners<'_>,
) -> Result<(), PipeError> {
    let config = config::Config::from_env()?;
    if config.quiet {
        console.quiet();
    }
    let credentials = auth::load(&config.region, &config.credentials, &config.network);
    let sdk = unless_stopped(stop, async {
        Ok(timed(sink, "credentials", credentials).await?)
    })
    .await?;
    let (store, cdn) = (
        S3Store::for_deploy(&sdk, config.deploy.as_ref()),
        CloudFront::new(&sdk),
    );
    let site = HttpSite::new(config.network.connect_timeout, config.network.read_timeout);
    run::run(&config, &store, &cdn, &site, PACING, stop, sink).await
}
