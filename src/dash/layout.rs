//! Where each pane of the dashboard goes on a screen of a given size. Pure.
//!
//! [`crate::dash::ui`] draws into these areas and [`crate::dash::app`] pages
//! and scrolls the plan tree by [`tree_rows`]; both ask here, so the rows the
//! app scrolls by are the rows the tree shows. This module is a leaf: it
//! knows screen sizes, not the app's state.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::Block;

/// Below this width only a note is drawn.
pub const MIN_WIDTH: u16 = 40;

/// Below this height only a note is drawn.
pub const MIN_HEIGHT: u16 = 10;

/// The areas of the main screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panes {
    pub header: Rect,
    /// The plan tree, border included.
    pub tree: Rect,
    pub detail: Rect,
    pub queue: Rect,
    pub log: Rect,
    pub feed: Rect,
    pub footer: Rect,
}

/// Returns whether the screen is big enough for the panes.
pub fn fits(area: Rect) -> bool {
    area.width >= MIN_WIDTH && area.height >= MIN_HEIGHT
}

/// Returns the panes of the main screen for `area`.
///
/// ```text
/// header (1 row)
/// tree (56%)          │ detail
///                     ├ queue (a third, 4 to 8 rows)
/// log (56%)           │ feed       (a quarter, 4 to 10 rows)
/// footer (1 row)
/// ```
pub fn panes(area: Rect) -> Panes {
    let bottom = (area.height / 4).clamp(4, 10);
    let [header, middle, lower, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(bottom),
        Constraint::Length(1),
    ])
    .areas(area);
    let [tree, side] =
        Layout::horizontal([Constraint::Percentage(56), Constraint::Percentage(44)]).areas(middle);
    let queue_height = (side.height / 3).clamp(4, 8);
    let [detail, queue] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(queue_height)]).areas(side);
    let [log, feed] =
        Layout::horizontal([Constraint::Percentage(56), Constraint::Percentage(44)]).areas(lower);
    Panes {
        header,
        tree,
        detail,
        queue,
        log,
        feed,
        footer,
    }
}

/// Returns how many plan-tree rows a `width` × `height` screen shows (at
/// least one): the tree pane inside its border.
pub fn tree_rows(width: u16, height: u16) -> usize {
    let tree = panes(Rect::new(0, 0, width, height)).tree;
    usize::from(Block::bordered().inner(tree).height).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_gets_what_header_footer_log_and_borders_leave() {
        for height in MIN_HEIGHT..=120 {
            let bottom = (height / 4).clamp(4, 10);
            assert_eq!(
                tree_rows(100, height),
                usize::from(height - bottom - 4),
                "height {height}"
            );
        }
        assert_eq!(tree_rows(80, 24), 14);
    }

    #[test]
    fn panes_tile_the_screen() {
        let area = Rect::new(0, 0, 100, 30);
        let p = panes(area);
        assert_eq!(p.header.y, 0);
        assert_eq!(p.footer.y, 29);
        assert_eq!(p.tree.height, p.detail.height + p.queue.height);
        assert_eq!(p.tree.width + p.detail.width, 100);
        assert_eq!(p.log.y, p.tree.y + p.tree.height);
        assert_eq!(p.log.height + p.tree.height + 2, 30);
    }
}
