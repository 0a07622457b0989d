//! Processes by pid: whether one is alive, whether it is still the process
//! a record names (not an unrelated one that reused the pid), signals, and
//! this process's own resource use. Linux `/proc` where it is needed.
//!
//! A leaf: it imports nothing from the crate. Deciding *which* process to
//! signal is the caller's (`runner::folder` owns the run-folder protocol).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, kill_process, kill_process_group, test_kill_process};

pub use rustix::process::Signal;

fn pid(raw: u32) -> Option<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw)
}

/// Returns whether a process with this pid exists (zombies included).
pub fn alive(raw: u32) -> bool {
    let Some(p) = pid(raw) else {
        return false;
    };
    match test_kill_process(p) {
        Ok(()) => true,
        Err(e) => e == Errno::PERM,
    }
}

/// Sends `signal` to one process; a process already gone is fine.
pub fn signal(raw: u32, signal: Signal) -> io::Result<()> {
    let Some(p) = pid(raw) else {
        return Ok(());
    };
    match kill_process(p, signal) {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sends `signal` to every process of group `pgid`; a group already gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) -> io::Result<()> {
    let Some(g) = pid(pgid) else {
        return Ok(());
    };
    match kill_process_group(g, signal) {
        Ok(()) | Err(Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(raw: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{raw}/stat")).ok()?;
    // The command (which may hold spaces and parentheses) ends at the last `)`.
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Returns when a process started, in clock ticks since boot (`/proc/<pid>/stat`
/// field 22). With the pid, it names one process for the machine's uptime:
/// a pid reused by another process has another start time.
pub fn start_ticks(raw: u32) -> Option<u64> {
    stat_fields(raw)?.get(19)?.parse().ok()
}

/// Returns whether the process has ended but was not reaped yet (a zombie:
/// `Z` in `/proc/<pid>/stat`). An orphan whose new parent does not reap it
/// stays one; it holds no lock and writes nothing.
pub fn is_zombie(raw: u32) -> bool {
    stat_fields(raw).is_some_and(|f| f.first().is_some_and(|s| s == "Z"))
}

/// Returns this process's start time, as [`start_ticks`].
pub fn own_start_ticks() -> Option<u64> {
    start_ticks(std::process::id())
}

/// Returns whether `pid` is alive and still the process a record names.
///
/// `ticks` is the start time recorded with the pid; when the record has
/// none (written by an older orch), `cmdline_arg` decides: the process's
/// command line must hold that argument. Without `/proc` the pid alone is
/// trusted.
pub fn is_same(raw: u32, ticks: Option<u64>, cmdline_arg: Option<&Path>) -> bool {
    if !alive(raw) {
        return false;
    }
    if let Some(ticks) = ticks {
        return match start_ticks(raw) {
            Some(now) => now == ticks,
            None => !Path::new("/proc/self").exists(),
        };
    }
    match cmdline_arg {
        Some(arg) => match std::fs::read(format!("/proc/{raw}/cmdline")) {
            Ok(cmdline) => {
                let wanted = arg.as_os_str().as_encoded_bytes();
                cmdline.split(|b| *b == 0).any(|a| a == wanted)
            }
            Err(_) => !Path::new("/proc/self").exists(),
        },
        None => true,
    }
}

/// Returns whether some process has `path` open: a link to it among the
/// `/proc/<pid>/fd` of the processes this one may look at (another user's
/// are not seen). Without `/proc`, `true`: nothing can be ruled out.
pub fn holds_open(path: &Path) -> bool {
    let Ok(target) = path.canonicalize() else {
        return false;
    };
    let Some(mut pids) = pids() else {
        return true;
    };
    pids.any(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == target))
        })
    })
}

/// The pids in `/proc`, or `None` without it.
fn pids() -> Option<impl Iterator<Item = u32>> {
    let processes = std::fs::read_dir("/proc").ok()?;
    Some(
        processes
            .flatten()
            .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok()),
    )
}

/// Returns the processes (of those this one may look at) whose command
/// line holds `word` followed by an argument `then` accepts, this one left
/// out. Without `/proc`, none.
pub fn with_args(word: &str, then: impl Fn(&Path) -> bool) -> Vec<u32> {
    let Some(pids) = pids() else {
        return Vec::new();
    };
    let me = std::process::id();
    pids.filter(|pid| *pid != me)
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let mut args = cmdline.split(|b| *b == 0);
            args.by_ref().any(|a| a == word.as_bytes())
                && args
                    .next()
                    .is_some_and(|arg| then(Path::new(std::ffi::OsStr::from_bytes(arg))))
        })
        .collect()
}

/// Returns this process's peak resident set size in KiB (`VmHWM`).
pub fn own_peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Returns the CPU time this process used (user and system).
pub fn own_cpu_time() -> Option<Duration> {
    let fields = stat_fields(std::process::id())?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = rustix::param::clock_ticks_per_second();
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_with_another_start_time_is_another_process() {
        let me = std::process::id();
        let ticks = own_start_ticks();
        assert!(ticks.is_some());
        assert!(is_same(me, ticks, None));
        assert!(!is_same(me, ticks.map(|t| t + 1), None));
        assert!(!is_same(me, None, Some(Path::new("--not-an-argument"))));
        assert!(!alive(u32::MAX));
    }

    #[test]
    fn a_file_is_held_open_while_a_process_has_it_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.lock");
        std::fs::write(&path, "").unwrap();
        assert!(!holds_open(&path));
        let file = std::fs::File::open(&path).unwrap();
        assert!(holds_open(&path));
        drop(file);
        assert!(!holds_open(&path));
        assert!(!holds_open(&dir.path().join("gone")));
    }
}
