//! Stopping a process group: TERM, a grace period, then KILL.
//!
//! The group is the unit of life and death: an agent's children and
//! grandchildren share its group (unless they make their own session), so
//! signalling `-pgid` reaches them all, and "no process outlives its task"
//! is checked with `kill(-pgid, 0)`.

use std::io;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, Signal, test_kill_process_group};

/// Why a group is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The attempt ran past its timeout.
    Timeout,
    /// Someone asked once (cancel, first Ctrl-C, coordinator stopping).
    Requested,
    /// Someone asked again (second Ctrl-C).
    RequestedAgain,
    /// The agent itself exited and left processes behind.
    Leftovers,
}

/// How to stop the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// SIGTERM, then SIGKILL after the grace period.
    TermThenKill { grace: Duration },
    /// SIGKILL at once.
    Kill,
}

/// Returns how to stop a group for `reason`.
pub fn method(reason: Reason, grace: Duration) -> Method {
    match reason {
        Reason::Timeout | Reason::Requested => Method::TermThenKill { grace },
        Reason::Leftovers => Method::TermThenKill {
            grace: grace.min(Duration::from_secs(2)),
        },
        Reason::RequestedAgain => Method::Kill,
    }
}

fn pid(raw: u32) -> Option<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw)
}

/// Returns whether any live process of group `pgid` is left. Zombies (dead,
/// waiting for their parent, often init, to collect them) do not count: on
/// Linux the group's members are looked up in `/proc`.
pub fn group_alive(pgid: u32) -> bool {
    let Some(group) = pid(pgid) else {
        return false;
    };
    if matches!(test_kill_process_group(group), Err(Errno::SRCH)) {
        return false;
    }
    match live_members(pgid) {
        Some(n) => n > 0,
        None => true,
    }
}

/// Counts the non-zombie processes of a group from `/proc`; `None` without `/proc`.
fn live_members(pgid: u32) -> Option<usize> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut live = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command (which may hold spaces) start after the last `)`.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
        if group == Some(pgid) && state != Some("Z") {
            live += 1;
        }
    }
    Some(live)
}

/// Stops a group from a plain thread: TERM, wait up to the grace period for
/// it to empty, then KILL. Returns whether KILL was needed.
pub fn stop_group_blocking(pgid: u32, method: Method) -> io::Result<bool> {
    match method {
        Method::Kill => {
            crate::process::signal_group(pgid, Signal::KILL)?;
            Ok(true)
        }
        Method::TermThenKill { grace } => {
            crate::process::signal_group(pgid, Signal::TERM)?;
            let deadline = std::time::Instant::now() + grace;
            while std::time::Instant::now() < deadline {
                if !group_alive(pgid) {
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            crate::process::signal_group(pgid, Signal::KILL)?;
            Ok(true)
        }
    }
}

/// Names a signal number for messages (`9 (SIGKILL)`).
///
/// The numbers come from the platform's constants, not a table of Linux
/// numbers (`SIGBUS` is 7 on Linux and 10 on macOS).
pub fn signal_name(signal: i32) -> String {
    const NAMES: [(Signal, &str); 12] = [
        (Signal::HUP, "SIGHUP"),
        (Signal::INT, "SIGINT"),
        (Signal::QUIT, "SIGQUIT"),
        (Signal::ILL, "SIGILL"),
        (Signal::ABORT, "SIGABRT"),
        (Signal::BUS, "SIGBUS"),
        (Signal::FPE, "SIGFPE"),
        (Signal::KILL, "SIGKILL"),
        (Signal::SEGV, "SIGSEGV"),
        (Signal::PIPE, "SIGPIPE"),
        (Signal::ALARM, "SIGALRM"),
        (Signal::TERM, "SIGTERM"),
    ];
    match NAMES.iter().find(|(s, _)| s.as_raw() == signal) {
        Some((_, name)) => format!("signal {signal} ({name})"),
        None => format!("signal {signal}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_request_kills_at_once() {
        let grace = Duration::from_secs(10);
        assert_eq!(
            method(Reason::Requested, grace),
            Method::TermThenKill { grace }
        );
        assert_eq!(
            method(Reason::Timeout, grace),
            Method::TermThenKill { grace }
        );
        assert_eq!(method(Reason::RequestedAgain, grace), Method::Kill);
        assert_eq!(
            method(Reason::Leftovers, grace),
            Method::TermThenKill {
                grace: Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9), "signal 9 (SIGKILL)");
        let bus = Signal::BUS.as_raw();
        assert_eq!(signal_name(bus), format!("signal {bus} (SIGBUS)"));
        assert_eq!(signal_name(64), "signal 64");
    }
}
