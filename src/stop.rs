//! A request to stop, as a signal gives it: every long-running part of a
//! run can ask whether to stop, or wait for it. Imports nothing of the
//! crate; `edge::signals` turns SIGTERM and SIGINT into one.

use std::time::Duration;

use tokio::sync::watch;

/// How long a request already in flight when a stop comes may take to
/// finish: long enough for one S3 is completing to be seen through (and
/// reported as done), short enough to end within Bitbucket's grace period.
pub const GRACE: Duration = Duration::from_millis(800);

/// The signals that stop a run. Bitbucket stops a step (a manual stop, the
/// step's timeout) with SIGTERM, then SIGKILL after a grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Int,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
        }
    }

    /// 128 + the signal's number, as shells report a process it ended.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Term => 143,
            Signal::Int => 130,
        }
    }
}

/// The receiving end: cheap to clone, one per task that must stop.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<Option<Signal>>);

/// The sending end, held by whatever hears the signals.
#[derive(Debug)]
pub struct Stopper(watch::Sender<Option<Signal>>);

/// Runs `work` (the whole pipe) on a multi-threaded runtime, then leaves
/// without waiting for blocking work still under way. Dropping a runtime
/// waits for its blocking tasks: after a stop, a file half hashed or
/// compressed (seconds for a few GB) would hold the exit long after the
/// report was written, with no signal handler left for a second signal.
pub fn run_then_leave<T>(work: impl Future<Output = T>) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the runtime starts");
    let out = runtime.block_on(work);
    runtime.shutdown_background();
    out
}

pub fn channel() -> (Stopper, Stop) {
    let (tx, rx) = watch::channel(None);
    (Stopper(tx), Stop(rx))
}

impl Stopper {
    /// Asks every [`Stop`] to stop; the first signal is the one kept.
    pub fn stop(&self, signal: Signal) {
        self.0.send_if_modified(|s| {
            let first = s.is_none();
            if first {
                *s = Some(signal);
            }
            first
        });
    }
}

impl Stop {
    /// A stop that never comes.
    #[cfg(test)]
    pub fn never() -> Stop {
        channel().1
    }

    /// The signal, once one came.
    pub fn requested(&self) -> Option<Signal> {
        *self.0.borrow()
    }

    /// Runs `work`; when a stop comes first, gives it [`GRACE`] more to
    /// finish, then gives up with the signal (dropping `work`).
    pub async fn finish_within<T>(&self, work: impl Future<Output = T>) -> Result<T, Signal> {
        tokio::pin!(work);
        tokio::select! {
            biased;
            out = &mut work => Ok(out),
            signal = self.wait() => tokio::time::timeout(GRACE, &mut work)
                .await
                .map_err(|_| signal),
        }
    }

    /// Waits for the signal; pending forever when none can come.
    pub async fn wait(&self) -> Signal {
        let mut rx = self.0.clone();
        loop {
            if let Some(signal) = *rx.borrow_and_update() {
                return signal;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_signal_stops_every_receiver() {
        let (stopper, stop) = channel();
        let other = stop.clone();
        assert_eq!(stop.requested(), None);
        let waiting = tokio::spawn(async move { other.wait().await });
        stopper.stop(Signal::Int);
        stopper.stop(Signal::Term);
        assert_eq!(waiting.await.unwrap(), Signal::Int);
        assert_eq!(stop.requested(), Some(Signal::Int));
        assert_eq!(stop.wait().await, Signal::Int);
    }

    #[tokio::test]
    async fn work_in_flight_gets_a_grace_then_is_dropped() {
        let (stopper, stop) = channel();
        stopper.stop(Signal::Term);
        let quick = stop.finish_within(tokio::time::sleep(Duration::from_millis(10)));
        assert_eq!(quick.await, Ok(()));
        let stuck = stop.finish_within(std::future::pending::<()>());
        assert_eq!(stuck.await, Err(Signal::Term));
    }

    #[tokio::test]
    async fn never_never_stops() {
        let stop = Stop::never();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), stop.wait()).await;
        assert!(waited.is_err());
        assert_eq!(stop.requested(), None);
    }
}
