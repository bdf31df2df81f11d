//! The listeners of a run: the console (pipes-style lines) and the JSON
//! record, fed the same events.

pub mod console;
pub mod record;

use std::process::ExitCode;

pub use console::Console;
pub use record::Record;

use crate::run::PipeError;

/// 0 on success, 1 on any failure.
pub fn exit_code(result: &Result<(), PipeError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
