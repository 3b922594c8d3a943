//! A command whose reader went away (`collection show ID | head -1`) ends quietly, the Unix way.
//!
//! Rust ignores SIGPIPE, so writing to a closed pipe makes `println!` panic with a backtrace.
//! Commands that print and exit take the default action back: the kernel ends the process with
//! SIGPIPE (the shell reports 141) at the first write nobody reads, with nothing half-written
//! anywhere else (these commands print after their database work, or only read). The daemon,
//! the simulator and the benchmark keep ignoring it: their sockets must never kill them.

use super::Command;

impl Command {
    /// Whether the command is a short-lived printer rather than a server.
    fn ends_on_closed_stdout(&self) -> bool {
        !matches!(
            self,
            Command::Run(_) | Command::SimulateAmc(_) | Command::Bench(_) | Command::Demo(_)
        )
    }
}

/// Restores SIGPIPE's default action for commands that print and exit.
pub(super) fn end_quietly_on_closed_stdout(command: &Command) {
    if command.ends_on_closed_stdout() {
        // SAFETY: called once at start-up, before any thread is spawned; `signal` with a
        // constant disposition touches no memory of ours.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}
