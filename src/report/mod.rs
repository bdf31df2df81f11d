//! The listeners of a run: the console (pipes-style lines) and the JSON
//! record, fed the same events.

pub mod console;
pub mod record;

use std::process::ExitCode;

pub use console::Console;
pub use record::Record;

use crate::run::PipeError;

/// 0 on success, 130 or 143 when SIGINT or SIGTERM stopped the run (128 +
/// the signal, as shells report it), 1 on any other failure.
pub fn exit_code(result: &Result<(), PipeError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e
            .signal()
            .map_or(ExitCode::FAILURE, |s| ExitCode::from(s.exit_code())),
    }
}
