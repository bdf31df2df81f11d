//! SIGTERM and SIGINT, turned into a [`Stop`] request. Inside the image the
//! pipe is PID 1, which the kernel gives no default action for SIGTERM: the
//! process must handle it itself or `docker stop` waits for SIGKILL.

use tokio::signal::unix::{SignalKind, signal};

use crate::stop::{Signal, Stopper};

/// Listens until the process ends: the first signal asks the run to stop
/// (it then ends on its own, within its grace period); a second one exits
/// at once, with the code of the first.
pub async fn listen(stopper: Stopper) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM and SIGINT: a stop will end the run at once");
        return;
    };
    let mut first = None;
    loop {
        let signal = tokio::select! {
            _ = term.recv() => Signal::Term,
            _ = int.recv() => Signal::Int,
        };
        match first {
            None => {
                first = Some(signal);
                stopper.stop(signal);
            }
            Some(first) => std::process::exit(i32::from(first.exit_code())),
        }
    }
}
