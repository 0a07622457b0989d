//! `orch logs ID [--attempt N] [-f] [--raw]`: an agent's captured output.
//!
//! An agent's output is not trusted to drive the reader's terminal: escape
//! sequences (colours, cursor moves, clear screen, window titles, OSC 8
//! links, device queries) and other control characters are removed, a lone
//! carriage return becomes a new line (so a line cannot be overwritten
//! after it is shown), and tabs and new lines stay. `--raw` prints the log's
//! bytes as they are.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use crate::cli::{GlobalArgs, Workspace};
use crate::error::CliError;
use crate::plan::FullId;
use crate::runner::spec;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The task or subtask
    id: String,
    /// Which attempt (default: the latest)
    #[arg(long, value_name = "N")]
    attempt: Option<u32>,
    /// Keep printing output as the agent writes it, until the attempt ends
    #[arg(short, long)]
    follow: bool,
    /// Print the log's bytes as they are, terminal escape sequences included
    #[arg(long)]
    raw: bool,
}

pub fn run(global: &GlobalArgs, args: LogsArgs) -> Result<(), CliError> {
    let ws = Workspace::locate(global)?;
    let id = FullId::parse(&args.id)
        .map_err(|e| CliError::input(format!("invalid id `{}`: {e}", args.id)))?;
    let runs = ws.state_dir().unit_runs(&id);
    let attempt = match args.attempt {
        Some(n) => n,
        None => latest(&runs).ok_or_else(|| {
            CliError::input(format!("`{id}` has no runs yet"))
                .with_hint("`orch status` shows what has run")
        })?,
    };
    let dir = ws.state_dir().run_dir(&id, attempt);
    let log = dir.join(spec::LOG);
    if !dir.is_dir() {
        return Err(CliError::input(format!("`{id}` has no attempt {attempt}")));
    }
    let mut out = std::io::stdout().lock();
    let mut filter = (!args.raw).then(Inert::default);
    let mut offset = copy_from(&log, 0, &mut out, filter.as_mut())?;
    if !args.follow {
        return Ok(());
    }
    loop {
        let ended = dir.join(spec::EXIT).exists();
        offset = copy_from(&log, offset, &mut out, filter.as_mut())?;
        if ended {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Returns the highest attempt number with a run folder.
fn latest(runs: &std::path::Path) -> Option<u32> {
    std::fs::read_dir(runs)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .max()
}

/// Copies the log from `offset` to `out`, through `filter` when given;
/// returns the new offset.
fn copy_from(
    log: &std::path::Path,
    offset: u64,
    out: &mut impl Write,
    filter: Option<&mut Inert>,
) -> Result<u64, CliError> {
    let mut file = match std::fs::File::open(log) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => return Err(e.into()),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    match filter {
        Some(filter) => out.write_all(&filter.feed(&buf))?,
        None => out.write_all(&buf)?,
    }
    out.flush()?;
    Ok(offset + buf.len() as u64)
}

/// Makes terminal output inert, a chunk at a time (a sequence may span
/// chunks, as it does when following a log).
#[derive(Debug, Default)]
struct Inert {
    state: Seq,
}

/// Where the filter is inside an escape sequence.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Seq {
    #[default]
    Text,
    /// After ESC.
    Esc,
    /// After ESC and an intermediate byte (`ESC ( B`).
    EscIntermediate,
    /// A control sequence (`ESC [` … final byte).
    Csi,
    /// A string (`ESC ]`, `ESC P`, `ESC X`, `ESC ^`, `ESC _`) until BEL or ST.
    Str,
    /// ESC inside a string: `\` ends it.
    StrEsc,
    /// A carriage return not yet known to start `\r\n`.
    Return,
    /// The first byte (0xC2) of a UTF-8 character that may be a C1 control.
    C2,
}

impl Inert {
    /// Returns `chunk` with escape sequences and control characters removed.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len());
        for &b in chunk {
            self.byte(b, &mut out);
        }
        out
    }

    fn byte(&mut self, b: u8, out: &mut Vec<u8>) {
        const ESC: u8 = 0x1b;
        self.state = match (self.state, b) {
            (Seq::Esc, b'[') => Seq::Csi,
            (Seq::Esc, b']' | b'P' | b'X' | b'^' | b'_') => Seq::Str,
            (Seq::Esc, 0x20..=0x2f) => Seq::EscIntermediate,
            (Seq::Esc | Seq::EscIntermediate, _) => Seq::Text,
            (Seq::Csi, 0x40..=0x7e) => Seq::Text,
            (Seq::Csi, _) => Seq::Csi,
            (Seq::Str, 0x07) => Seq::Text,
            (Seq::Str, ESC) => Seq::StrEsc,
            (Seq::Str, _) => Seq::Str,
            (Seq::StrEsc, b'\\') => Seq::Text,
            (Seq::StrEsc, _) => Seq::Str,
            (Seq::C2, 0x80..=0x9f) => Seq::Text,
            (Seq::C2, _) => {
                out.push(0xc2);
                return self.text(b, out);
            }
            (Seq::Return, b'\n') => {
                out.push(b'\n');
                Seq::Text
            }
            (Seq::Return, _) => {
                out.push(b'\n');
                return self.text(b, out);
            }
            (Seq::Text, _) => return self.text(b, out),
        };
    }

    fn text(&mut self, b: u8, out: &mut Vec<u8>) {
        self.state = match b {
            0x1b => Seq::Esc,
            b'\r' => Seq::Return,
            0xc2 => Seq::C2,
            b'\n' | b'\t' => {
                out.push(b);
                Seq::Text
            }
            0x00..=0x1f | 0x7f => Seq::Text,
            _ => {
                out.push(b);
                Seq::Text
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_and_controls_are_removed() {
        let table: [(&[u8], &str); 8] = [
            (b"\x1b]0;title\x07plain\n", "plain\n"),
            (b"\x1b[2J\x1b[31mred\x1b[0m\n", "red\n"),
            (b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
            (b"a\x07b\x08c\x00d", "abcd"),
            (b"progress 1\rprogress 2\r\n", "progress 1\nprogress 2\n"),
            (b"tab\there\n", "tab\there\n"),
            ("caf\u{e9} \u{9b}31m\u{85}".as_bytes(), "caf\u{e9} 31m"),
            (b"\x1b(Bx\x1bPq#0\x1b\\y", "xy"),
        ];
        for (input, want) in table {
            let got = Inert::default().feed(input);
            assert_eq!(String::from_utf8_lossy(&got), want, "{input:?}");
        }
    }

    #[test]
    fn a_sequence_split_across_chunks_is_still_removed() {
        let mut inert = Inert::default();
        let mut got = inert.feed(b"one\x1b]0;ti");
        got.extend(inert.feed(b"tle\x07two\r"));
        got.extend(inert.feed(b"\nthree"));
        assert_eq!(String::from_utf8_lossy(&got), "onetwo\nthree");
    }
}
