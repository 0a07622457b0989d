//! Putting the terminal into the dashboard's mode, and always back.
//!
//! [`Screen`] enters raw mode and the alternate screen (through
//! `ratatui::try_init`, which also installs a panic hook that restores the
//! terminal before the panic message prints) and restores both when
//! dropped, so every way out of the dashboard (quit, error, `?`) leaves the
//! terminal as it was. Ctrl-C in raw mode arrives as a key, which the app
//! handles; signals from elsewhere come through `event.rs`.

use std::io::{self, IsTerminal};

use ratatui::DefaultTerminal;

use crate::dash::app::AppState;
use crate::dash::ui;

/// The terminal, in the dashboard's mode while this lives.
#[must_use = "the terminal is restored when the screen is dropped"]
pub struct Screen {
    terminal: DefaultTerminal,
}

impl Screen {
    /// Takes over the terminal; fails when stdin or stdout is not one.
    pub fn open() -> io::Result<Screen> {
        if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
            return Err(io::Error::other("stdin and stdout must be a terminal"));
        }
        match ratatui::try_init() {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                // Raw mode may be on even though the rest failed.
                ratatui::restore();
                Err(e)
            }
        }
    }

    /// Returns the terminal's size as (columns, rows).
    pub fn size(&self) -> io::Result<(u16, u16)> {
        let size = self.terminal.size()?;
        Ok((size.width, size.height))
    }

    /// Draws one frame.
    pub fn draw(&mut self, app: &AppState) -> io::Result<()> {
        self.terminal.draw(|frame| ui::render(app, frame))?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.terminal.show_cursor();
        ratatui::restore();
    }
}
