//! What the `warren` commands do; `main.rs` only parses the command line.

pub mod client;
pub mod gc;
pub mod new;
pub mod pipeline;
pub mod reviews;
pub mod run;

/// Process exit codes of `warren run` (and of bad usage everywhere).
pub mod exit {
    /// The job succeeded.
    pub const SUCCESS: i32 = 0;
    /// The job returned an error.
    pub const JOB_ERROR: i32 = 1;
    /// A limit stopped the job, or it trapped.
    pub const LIMIT_OR_TRAP: i32 = 2;
    /// The plugin is invalid or the command line is wrong.
    pub const INVALID: i32 = 3;
}
