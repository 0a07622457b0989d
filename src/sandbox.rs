//! Landlock confinement of a child process: what the kernel supports, and a
//! ruleset that lets a process write only beneath the paths it is given.
//!
//! It knows paths and rights, not agents, git or orch's folders:
//! `runner::confine` decides which paths an attempt or a hook may write.
//! The decisions, for a person, are in `docs/run.md` ("What an agent may
//! write").
//!
//! - Reads, execution and device ioctls are not restricted. Every write right
//!   of Landlock ABI 3 is handled: writing and truncating files; creating,
//!   removing, renaming and linking files, folders, sockets, pipes, devices
//!   and symlinks.
//! - A folder in the [`Policy`] grants every one of those rights beneath it;
//!   a file grants writing and truncating it (not replacing or removing it).
//!   A path that does not exist when the ruleset is built is left out:
//!   Landlock rules are attached to existing files.
//! - ABI 3 (Linux 6.2) is the least orch confines with ([`MIN_ABI`]): below
//!   it truncation is not handled, so any file could be emptied, and the
//!   sandbox would promise what it does not keep.
//! - With [`Policy::block_tcp`] and ABI 4 or later, TCP `bind` and `connect`
//!   are refused (Landlock handles no other network access).
//! - `no_new_privs` is set with the ruleset, as Landlock requires of an
//!   unprivileged process: a confined process cannot gain privileges through
//!   a set-user-id program (`sudo` fails).
//!
//! Between fork and exec. The ruleset is built in the parent, before the
//! fork: [`prepare`] opens every path and adds its rule (allocating, failing
//! with a typed error). The child, in `pre_exec`, only calls
//! [`Ruleset::restrict_self`]: `prctl(PR_SET_NO_NEW_PRIVS)` and
//! `landlock_restrict_self` on the ready file descriptor, two system calls
//! that are async-signal-safe and allocate nothing, so it is safe in the
//! child of a multi-threaded process (the coordinator runs hooks from a
//! thread pool). Restricting a dedicated thread that then spawns was the
//! other way: Landlock confines the calling thread for good, so that thread
//! could never be reused, and every spawn (tokio's included) would have to
//! be moved onto a fresh one. The ruleset's descriptor is close-on-exec, so
//! the confined program never holds it.
//!
//! [`probe`] is the one place that asks the kernel which ABI it has. Tests
//! make it answer otherwise with [`TEST_ABI_VAR`]; nothing else sets it.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    ABI, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, RulesetAttr,
    RulesetCreatedAttr,
};
use serde::{Deserialize, Serialize};

/// The oldest Landlock ABI orch confines with: 3 (Linux 6.2) handles truncation.
pub const MIN_ABI: u32 = 3;

/// The first ABI that handles TCP `bind` and `connect` (Linux 6.7).
pub const NETWORK_ABI: u32 = 4;

/// Set only by orch's own tests: [`probe`] answers this ABI (a number; `0`
/// means no Landlock) instead of asking the kernel, so that a test can see
/// what orch does on a kernel without Landlock.
pub const TEST_ABI_VAR: &str = "ORCH_TEST_LANDLOCK_ABI";

/// `LANDLOCK_CREATE_RULESET_VERSION`: asks `landlock_create_ruleset` for the ABI.
const CREATE_RULESET_VERSION: libc::c_long = 1;

/// What the kernel offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Landlock with this ABI, at least [`MIN_ABI`].
    Available {
        abi: u32,
    },
    Unavailable(Unavailable),
}

/// Why processes cannot be confined on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unavailable {
    /// The kernel was built without Landlock (`ENOSYS`).
    NoLandlock,
    /// Landlock is built in but not enabled at boot (`EOPNOTSUPP`).
    DisabledAtBoot,
    /// Its ABI is older than [`MIN_ABI`].
    TooOld { abi: u32 },
    /// The probe failed with another error number.
    ProbeFailed { errno: i32 },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NoLandlock => f.write_str("the kernel has no Landlock"),
            Unavailable::DisabledAtBoot => {
                f.write_str("Landlock is not enabled (it must be in the kernel's `lsm=` list)")
            }
            Unavailable::TooOld { abi } => write!(
                f,
                "the kernel's Landlock ABI {abi} is older than {MIN_ABI} (Linux 6.2)"
            ),
            Unavailable::ProbeFailed { errno } => write!(
                f,
                "asking the kernel for Landlock failed: {}",
                io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// Returns what the kernel offers (or what [`TEST_ABI_VAR`] pretends).
pub fn probe() -> Support {
    let abi = match std::env::var(TEST_ABI_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        Some(0) => Err(Unavailable::NoLandlock),
        Some(abi) => Ok(abi),
        None => kernel_abi(),
    };
    match abi {
        Ok(abi) if abi >= MIN_ABI => Support::Available { abi },
        Ok(abi) => Support::Unavailable(Unavailable::TooOld { abi }),
        Err(why) => Support::Unavailable(why),
    }
}

fn kernel_abi() -> Result<u32, Unavailable> {
    // SAFETY: `landlock_create_ruleset(NULL, 0, VERSION)` reads no memory and
    // only returns the ABI number (or -1 with errno).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0 as libc::size_t,
            CREATE_RULESET_VERSION,
        )
    };
    if rc >= 0 {
        return Ok(u32::try_from(rc).unwrap_or(u32::MAX));
    }
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    Err(match errno {
        libc::ENOSYS => Unavailable::NoLandlock,
        libc::EOPNOTSUPP => Unavailable::DisabledAtBoot,
        errno => Unavailable::ProbeFailed { errno },
    })
}

/// Whether a confined process may use the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// Not restricted.
    Open,
    /// TCP `bind` and `connect` are refused.
    Blocked,
    /// Blocking was asked for, but the kernel's ABI is older than [`NETWORK_ABI`].
    NotBlockable,
}

/// Whether a run's agents and hooks are confined, and why not. Recorded in
/// `run.started`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Confinement {
    /// Under Landlock with this ABI.
    Confined { abi: u32, network: Network },
    /// `[sandbox] enabled = false`.
    Disabled,
    /// The kernel cannot confine them.
    Unavailable {
        #[serde(flatten)]
        why: Unavailable,
    },
}

impl Confinement {
    /// Decides from the config's wishes and the kernel's support.
    pub fn decide(enabled: bool, block_network: bool, support: Support) -> Confinement {
        match (enabled, support) {
            (false, _) => Confinement::Disabled,
            (true, Support::Unavailable(why)) => Confinement::Unavailable { why },
            (true, Support::Available { abi }) => Confinement::Confined {
                abi,
                network: match (block_network, abi >= NETWORK_ABI) {
                    (false, _) => Network::Open,
                    (true, true) => Network::Blocked,
                    (true, false) => Network::NotBlockable,
                },
            },
        }
    }

    /// Returns whether processes are confined.
    pub fn confines(&self) -> bool {
        matches!(self, Confinement::Confined { .. })
    }
}

/// What a confined process may write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Beneath a folder, everything; a file, only itself (write and truncate).
    pub write: Vec<PathBuf>,
    /// Refuse TCP `bind` and `connect` (where the ABI can).
    #[serde(default)]
    pub block_tcp: bool,
}

/// Why a ruleset could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot confine: {why}")]
    Unavailable { why: Unavailable },
    #[error("cannot read `{}` to confine writes to it", path.display())]
    Path {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot build the Landlock ruleset")]
    Landlock(#[source] landlock::RulesetError),
    /// The crate built a ruleset without a descriptor: the kernel cannot enforce it.
    #[error("the kernel did not enforce the Landlock ruleset")]
    NotEnforced,
}

/// A ruleset ready to confine a process; built before the fork.
#[derive(Debug)]
pub struct Ruleset {
    fd: OwnedFd,
    /// Paths of the policy that did not exist, and so got no rule.
    pub skipped: Vec<PathBuf>,
}

/// Builds the ruleset of `policy`: opens every path and adds its rule.
pub fn prepare(policy: &Policy) -> Result<Ruleset, SandboxError> {
    let abi = match probe() {
        Support::Available { abi } => abi,
        Support::Unavailable(why) => return Err(SandboxError::Unavailable { why }),
    };
    let write = AccessFs::from_write(ABI::V3);
    let mut ruleset = landlock::Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(write)
        .map_err(SandboxError::Landlock)?;
    if policy.block_tcp && abi >= NETWORK_ABI {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(SandboxError::Landlock)?;
    }
    let mut created = ruleset.create().map_err(SandboxError::Landlock)?;
    let mut skipped = Vec::new();
    for path in &policy.write {
        let Some(is_dir) = kind(path)? else {
            skipped.push(path.clone());
            continue;
        };
        let fd = PathFd::new(path).map_err(|e| SandboxError::Path {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        let access = if is_dir {
            write
        } else {
            write & AccessFs::from_file(ABI::V3)
        };
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(SandboxError::Landlock)?;
    }
    let fd: Option<OwnedFd> = created.into();
    let fd = fd.ok_or(SandboxError::NotEnforced)?;
    Ok(Ruleset { fd, skipped })
}

/// Returns whether `path` is a folder (following symlinks), `None` when it does not exist.
fn kind(path: &Path) -> Result<Option<bool>, SandboxError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(meta.is_dir())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SandboxError::Path {
            path: path.to_owned(),
            source,
        }),
    }
}

impl Ruleset {
    /// Confines the calling thread, and so what it executes, for good.
    ///
    /// Meant for `pre_exec`: it makes two system calls and allocates
    /// nothing (an error is a raw OS error), so it is async-signal-safe.
    pub fn restrict_self(&self) -> io::Result<()> {
        // SAFETY: `prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)` takes no pointers.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_NO_NEW_PRIVS,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `landlock_restrict_self(fd, 0)` takes a descriptor we own
        // for as long as `self` lives, and no pointers.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_restrict_self,
                self.fd.as_raw_fd() as libc::c_long,
                0 as libc::c_long,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confinement_follows_config_and_kernel() {
        let seven = Support::Available { abi: 7 };
        let three = Support::Available { abi: 3 };
        let none = Support::Unavailable(Unavailable::NoLandlock);
        let table = [
            (false, false, seven, Confinement::Disabled),
            (false, true, none, Confinement::Disabled),
            (
                true,
                false,
                none,
                Confinement::Unavailable {
                    why: Unavailable::NoLandlock,
                },
            ),
            (
                true,
                false,
                seven,
                Confinement::Confined {
                    abi: 7,
                    network: Network::Open,
                },
            ),
            (
                true,
                true,
                seven,
                Confinement::Confined {
                    abi: 7,
                    network: Network::Blocked,
                },
            ),
            (
                true,
                true,
                three,
                Confinement::Confined {
                    abi: 3,
                    network: Network::NotBlockable,
                },
            ),
        ];
        for (enabled, block, support, want) in table {
            assert_eq!(
                Confinement::decide(enabled, block, support),
                want,
                "{enabled} {block} {support:?}"
            );
        }
    }

    #[test]
    fn confinement_json() {
        let shapes = [
            Confinement::Confined {
                abi: 7,
                network: Network::Open,
            },
            Confinement::Disabled,
            Confinement::Unavailable {
                why: Unavailable::TooOld { abi: 2 },
            },
        ];
        let json: Vec<String> = shapes
            .iter()
            .map(|c| serde_json::to_string(c).unwrap())
            .collect();
        insta::assert_snapshot!(json.join("\n"), @r#"
        {"mode":"confined","abi":7,"network":"open"}
        {"mode":"disabled"}
        {"mode":"unavailable","reason":"too_old","abi":2}
        "#);
        for c in shapes {
            let back: Confinement =
                serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn a_confined_child_writes_only_where_it_may() {
        use std::os::unix::process::CommandExt;
        if let Support::Unavailable(why) = probe() {
            eprintln!("SKIPPED: cannot test Landlock here: {why}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (inside, outside) = (dir.path().join("in"), dir.path().join("out"));
        std::fs::create_dir(&inside).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("kept"), "kept").unwrap();
        let ruleset = prepare(&Policy {
            write: vec![inside.clone(), dir.path().join("missing")],
            block_tcp: false,
        })
        .unwrap();
        assert_eq!(ruleset.skipped, vec![dir.path().join("missing")]);
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg(
            "echo new > in/new; echo no > out/new; echo no > out/kept; rm -f out/kept; \
             if [ -e out/new ]; then exit 1; fi",
        );
        cmd.current_dir(dir.path())
            .stderr(std::process::Stdio::null());
        // SAFETY: `restrict_self` is async-signal-safe (two system calls).
        unsafe {
            cmd.pre_exec(move || ruleset.restrict_self());
        }
        let status = cmd.status().unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(inside.join("new")).unwrap(),
            "new\n"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("kept")).unwrap(),
            "kept"
        );
    }
}
