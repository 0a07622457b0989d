//! Colours for statuses and headings. `anstream` strips them when the stream
//! is not a terminal or `NO_COLOR` is set (DESIGN §7).

use anstyle::{AnsiColor, Style};

use crate::lifecycle::Status;

/// Returns the style a status is shown in.
pub fn status(status: Status) -> Style {
    let color = match status {
        Status::Merged | Status::Done | Status::Resolved => AnsiColor::Green,
        Status::Running | Status::Merging | Status::AwaitingMerge => AnsiColor::Cyan,
        Status::Ready | Status::Retrying | Status::AwaitingReview => AnsiColor::Yellow,
        Status::Failed | Status::Blocked | Status::Conflicted => AnsiColor::Red,
        Status::Pending | Status::Cancelled | Status::Reverted => return Style::new().dimmed(),
    };
    Style::new().fg_color(Some(color.into()))
}

/// Returns the style of a heading line.
pub fn heading() -> Style {
    Style::new().bold()
}

/// Returns the style of secondary text.
pub fn dim() -> Style {
    Style::new().dimmed()
}
