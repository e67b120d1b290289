//! Ctrl-C and SIGTERM: the first one sets a flag the training loop checks after every step (it
//! then writes a checkpoint and returns); a second Ctrl-C exits at once with code 130.
//!
//! The handler is process-wide (ctrlc allows one), so it is installed once and the flag is a
//! static.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::FitError;

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Exit status of a second Ctrl-C, the shell convention for SIGINT (128 + 2).
pub const FORCED_EXIT_CODE: i32 = 130;

/// Installs the Ctrl-C/SIGTERM handler; later calls do nothing.
pub fn install() -> Result<(), FitError> {
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                if REQUESTED.swap(true, Ordering::SeqCst) {
                    eprintln!("second interrupt: exiting without a checkpoint");
                    std::process::exit(FORCED_EXIT_CODE);
                }
                eprintln!("interrupt: finishing the current step and writing a checkpoint (again to exit now)");
            })
            .map_err(|error| error.to_string())
        })
        .clone()
        .map_err(FitError::Signal)
}

/// Whether an interrupt arrived since the last [`clear`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Forgets an earlier interrupt (the loop calls it when it has acted on one).
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
