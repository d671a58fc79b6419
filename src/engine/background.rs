//! Threads for work nothing waits on, kept out of the engine's way.
//!
//! A snapshot's serialization is a burst of CPU, growing with the book, that no
//! acknowledgement waits for: the journal already holds every command. On a machine whose
//! only free core is the engine's, a thread at normal priority would take half of that
//! core for the burst, and every acknowledgement meanwhile would wait for it. At the
//! lowest priority it runs on what the engine leaves: a snapshot takes longer under full
//! load, a bid does not.

use std::io;

/// The nice value background threads run at: the lowest priority that still guarantees
/// progress (`SCHED_IDLE` could hold a snapshot back forever under sustained full load,
/// and with it the book copy it holds).
pub(super) const BACKGROUND_NICE: i32 = 19;

/// Runs `work` on a new thread named `name`, at [`BACKGROUND_NICE`] where the platform
/// allows a single thread's priority to be set (Linux).
pub(super) fn spawn<F>(name: &str, work: F) -> io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Err(e) = lower_this_thread() {
                tracing::debug!(error = %e, "background thread keeps its priority");
            }
            work()
        })
        .map(drop)
}

/// The calling thread's id, as `setpriority` and `getpriority` take it.
#[cfg(target_os = "linux")]
fn this_thread_id() -> io::Result<libc::id_t> {
    // SAFETY: `gettid` takes no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    libc::id_t::try_from(tid).map_err(|_| io::Error::other("bad thread id"))
}

/// Lowers the calling thread's CPU priority to [`BACKGROUND_NICE`].
#[cfg(target_os = "linux")]
fn lower_this_thread() -> io::Result<()> {
    // On Linux every thread has its own nice value, and `setpriority` on a thread id sets
    // only that thread's (elsewhere it would name the whole process).
    let tid = this_thread_id()?;
    // SAFETY: plain integers in, an integer out; no memory is shared.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lowers the calling thread's CPU priority: not available on this platform.
#[cfg(not(target_os = "linux"))]
fn lower_this_thread() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "per-thread priority is set on Linux only",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's nice value, read back from the kernel.
    fn nice_of_this_thread() -> i32 {
        let tid = this_thread_id().expect("thread id");
        // SAFETY: plain integers in, an integer out. getpriority returns the nice value
        // itself (-1 is a valid one; none here).
        unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) }
    }

    #[test]
    fn a_background_thread_runs_at_the_lowest_priority_and_others_keep_theirs() {
        let before = nice_of_this_thread();
        let (tx, rx) = std::sync::mpsc::channel();
        spawn("gavel-test-bg", move || {
            let name = std::thread::current().name().map(str::to_owned);
            tx.send((nice_of_this_thread(), name))
                .expect("receiver waits");
        })
        .expect("thread starts");
        let (nice, name) = rx.recv().expect("the thread reports");
        assert_eq!(nice, BACKGROUND_NICE);
        assert_eq!(name.as_deref(), Some("gavel-test-bg"));
        // Only that thread was lowered, not the process.
        assert_eq!(nice_of_this_thread(), before);
    }
}
