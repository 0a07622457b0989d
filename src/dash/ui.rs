//! Drawing the dashboard: `render(&AppState, &mut Frame)`, nothing else.
//!
//! ```text
//! ┌ header: target, run, counts, throughput, ETA ─────────────────────────┐
//! │ plan tree (phase > milestone > task > subtask) │ detail of selection  │
//! │                                                ├──────────────────────┤
//! │                                                │ merge queue          │
//! ├ agent log of selection ────────────────────────┼ event feed ──────────┤
//! └ footer: keys, or the last message ────────────────────────────────────┘
//! ```
//!
//! Only the visible rows of the tree are built, so a frame costs the same
//! for 100 items or 10,000 (see `benches/dash.rs`). Status is shown by a
//! glyph and a word as well as a colour, so nothing is lost under
//! `NO_COLOR`; the selection is shown reversed.

use std::time::{Duration, SystemTime};

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::dash::app::{AppState, Mode};
use crate::dash::layout::{self, MIN_HEIGHT, MIN_WIDTH};
use crate::lifecycle::Status;
use crate::narrate;
use crate::plan::{FullId, ItemIdx};
use crate::state::events::EventKind;
use crate::state::inbox::Action;
use crate::state::model::{ALL_AGENTS, Attempt, CandidateCheck, MergeProblem, Outcome, Usage};

/// Returns the glyph that stands for a status.
pub fn glyph(status: Status) -> &'static str {
    match status {
        Status::Pending => "·",
        Status::Ready => "○",
        Status::Running => "●",
        Status::Retrying => "↻",
        Status::AwaitingMerge => "◐",
        Status::Merging => "⇡",
        Status::AwaitingReview => "?",
        Status::Conflicted => "≠",
        Status::Merged | Status::Done | Status::Resolved => "✔",
        Status::Failed => "✘",
        Status::Blocked => "⊘",
        Status::Cancelled => "–",
        Status::Reverted => "↶",
    }
}

/// Styles text the way the app's colour setting allows.
struct Paint {
    color: bool,
}

impl Paint {
    fn status(&self, status: Status) -> Style {
        if !self.color {
            return Style::new();
        }
        let color = match status {
            Status::Merged | Status::Done | Status::Resolved => Color::Green,
            Status::Running | Status::Merging | Status::AwaitingMerge => Color::Cyan,
            Status::Ready | Status::Retrying | Status::AwaitingReview => Color::Yellow,
            Status::Failed | Status::Blocked | Status::Conflicted => Color::Red,
            Status::Pending | Status::Cancelled | Status::Reverted => {
                return Style::new().fg(Color::DarkGray);
            }
        };
        Style::new().fg(color)
    }

    fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    fn label(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Blue)
        } else {
            Style::new()
        }
    }
}

/// Draws the whole screen for `app`.
pub fn render(app: &AppState, frame: &mut Frame) {
    let area = frame.area();
    let paint = Paint { color: app.color };
    if !layout::fits(area) {
        let note = format!("orch dash needs at least {MIN_WIDTH}×{MIN_HEIGHT}; press q to quit");
        frame.render_widget(Paragraph::new(note).wrap(Wrap { trim: true }), area);
        return;
    }
    if let Mode::Log { scroll } = app.mode {
        log_screen(app, frame, area, scroll, &paint);
        return;
    }
    let panes = layout::panes(area);
    frame.render_widget(Paragraph::new(header_line(app, &paint)), panes.header);
    tree(app, frame, panes.tree, &paint);
    detail(app, frame, panes.detail, &paint);
    queue(app, frame, panes.queue, &paint);
    log_tail(app, frame, panes.log, &paint);
    feed(app, frame, panes.feed, &paint);
    frame.render_widget(Paragraph::new(footer_line(app, &paint)), panes.footer);

    match &app.mode {
        Mode::Help => help(frame, area, &paint),
        Mode::Confirm(action, id) => {
            let (question, consequence) = confirm_text(*action, id.as_str());
            let lines = vec![
                Line::styled(question, paint.bold()),
                Line::raw(consequence),
                Line::raw(""),
                Line::raw("y: yes    any other key: no"),
            ];
            popup(frame, area, "confirm", lines, &paint);
        }
        Mode::Reason(id, text) => {
            let lines = vec![
                Line::styled(format!("Reject `{id}`: why?"), paint.bold()),
                Line::raw("Its agent runs again with this text."),
                Line::raw(""),
                Line::raw(format!("{text}▏")),
                Line::raw(""),
                Line::raw("Enter: go on    Esc: do not reject"),
            ];
            popup(frame, area, "reject", lines, &paint);
        }
        Mode::ConfirmReject(id, reason) => {
            let lines = vec![
                Line::styled(format!("Reject `{id}`?"), paint.bold()),
                Line::raw(format!("Its agent runs again, told: {reason}")),
                Line::raw(""),
                Line::raw("y: yes    any other key: no"),
            ];
            popup(frame, area, "confirm", lines, &paint);
        }
        Mode::ConfirmQuit => {
            let lines = vec![
                Line::styled("Close the dashboard?", paint.bold()),
                Line::raw("q: close it; the run goes on in this terminal, printing progress lines"),
                Line::raw("s: stop the run too (agents are stopped and recorded as interrupted)"),
                Line::raw("any other key: stay"),
            ];
            popup(frame, area, "quit", lines, &paint);
        }
        Mode::Main | Mode::Search(_) | Mode::Log { .. } => {}
    }
}

fn header_line<'a>(app: &'a AppState, paint: &Paint) -> Line<'a> {
    let mut spans = vec![Span::styled("orch", paint.bold())];
    if let Some(target) = &app.state.target {
        spans.push(Span::raw(format!(" → {target}")));
    }
    let run = match (&app.run_ended, app.live) {
        (Some(how), _) => format!("  run ended: {how}"),
        (None, Some(pid)) => {
            let took = app
                .run_started
                .map(|s| format!(" {}", clock(elapsed(s, app.now))))
                .unwrap_or_default();
            format!("  live (pid {pid}){took}")
        }
        (None, None) => match &app.state.run {
            Some(r) if r.finished.is_some() => "  last run finished".to_owned(),
            Some(_) => "  last run stopped".to_owned(),
            None => "  nothing has run".to_owned(),
        },
    };
    spans.push(Span::styled(run, paint.dim()));
    spans.push(Span::raw("  "));
    for (status, n) in &app.counts {
        spans.push(Span::styled(
            format!("{}{n} ", glyph(*status)),
            paint.status(*status),
        ));
    }
    for (agent, pause) in app.state.paused.iter().filter(|(_, p)| p.holds_at(app.now)) {
        let who = if agent == ALL_AGENTS { "all" } else { agent };
        let until = pause
            .until
            .map(|u| crate::when::local(u.0, app.now))
            .unwrap_or_else(|| "resumed".to_owned());
        spans.push(Span::styled(
            format!(" ⏸ {who} until {until}"),
            paint.status(Status::Retrying),
        ));
    }
    let cost = Usage::total(app.state.items.values().flat_map(|s| s.attempts.iter()))
        .and_then(|u| u.cost_usd);
    if let Some(cost) = cost {
        spans.push(Span::styled(format!(" ${cost:.2}"), paint.dim()));
    }
    if let Some(rate) = throughput(app) {
        spans.push(Span::styled(format!(" {rate:.1}/min"), paint.dim()));
        let remaining: usize = app
            .counts
            .iter()
            .filter(|(s, _)| !s.is_terminal())
            .map(|(_, n)| n)
            .sum();
        if app.live.is_some() && remaining > 0 && rate > 0.0 {
            let eta = Duration::from_secs_f64(remaining as f64 / rate * 60.0);
            spans.push(Span::styled(format!(" ETA {}", clock(eta)), paint.dim()));
        }
    }
    Line::from(spans)
}

/// Returns tasks finished per minute of the run: until now while it is
/// live, else until it ended (or its last event, when it was killed).
fn throughput(app: &AppState) -> Option<f64> {
    let started = app.run_started?;
    let end = match app.live {
        Some(_) => app.now,
        None => app.run_finished.or(app.last_event).unwrap_or(app.now),
    };
    let minutes = elapsed(started, end).as_secs_f64() / 60.0;
    (app.finished_in_run > 0 && minutes > 0.0).then(|| f64::from(app.finished_in_run) / minutes)
}

fn elapsed(since: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(since).unwrap_or_default()
}

/// Formats a duration to the second: `8s`, `4m05s`, `2h03m`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    }
}

fn tree(app: &AppState, frame: &mut Frame, area: Rect, paint: &Paint) {
    let title = match (&app.search, app.filter.name()) {
        (s, "all") if s.is_empty() => format!(" plan ({} items) ", app.plan.items().len()),
        (s, f) if s.is_empty() => format!(" plan: {f} "),
        (s, "all") => format!(" plan: /{s} "),
        (s, f) => format!(" plan: /{s}, {f} "),
    };
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let lines: Vec<Line> = app
        .rows
        .iter()
        .enumerate()
        .skip(app.offset)
        .take(usize::from(inner.height))
        .map(|(n, idx)| {
            let mut line = tree_row(app, *idx, width, paint);
            if n == app.selected {
                line = line.patch_style(Style::new().add_modifier(Modifier::REVERSED));
            }
            line
        })
        .collect();
    if lines.is_empty() {
        let note = if app.plan.items().is_empty() {
            "the plan is empty"
        } else {
            "nothing matches; Esc clears the search, f cycles the filter"
        };
        frame.render_widget(Paragraph::new(note).style(paint.dim()), inner);
        return;
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn tree_row<'a>(app: &'a AppState, idx: ItemIdx, width: usize, paint: &Paint) -> Line<'a> {
    let item = app.plan.item(idx);
    let i = idx.index();
    let status = app.statuses[i];
    let depth = app.plan.ancestors(idx).count();
    let arrow = if item.children.is_empty() {
        " "
    } else if app.expanded[i] || !app.search.is_empty() {
        "▾"
    } else {
        "▸"
    };
    let right = if item.kind.is_container() {
        let (done, total) = app.progress[i];
        format!("{done}/{total}")
    } else {
        let s = app.state.items.get(&item.id);
        let mut r = status.as_str().replace('_', " ");
        if let Some(s) = s {
            let n = s.attempts.len();
            if n > 1 {
                r.push_str(&format!(" #{n}"));
            }
            if let Some(open) = s.open_attempt() {
                r.push_str(&format!(" {}", clock(elapsed(open.started.0, app.now))));
            }
        }
        r
    };
    let left_fixed = depth * 2 + 4;
    let room = width.saturating_sub(left_fixed + right.chars().count() + 1);
    let id = item.id.as_str();
    let mut label = truncate(id, room);
    let mut title_span = None;
    let after_id = room.saturating_sub(label.chars().count() + 2);
    if after_id > 3 && !item.title.is_empty() {
        title_span = Some(truncate(&item.title, after_id));
    }
    let used = left_fixed
        + label.chars().count()
        + title_span.as_ref().map_or(0, |t| t.chars().count() + 2);
    let pad = width.saturating_sub(used + right.chars().count());
    let id_style = if item.kind.is_container() {
        paint.bold()
    } else {
        Style::new()
    };
    let mut spans = vec![
        Span::raw(format!("{}{arrow} ", "  ".repeat(depth))),
        Span::styled(glyph(status), paint.status(status)),
        Span::raw(" "),
        Span::styled(std::mem::take(&mut label), id_style),
    ];
    if let Some(t) = title_span {
        spans.push(Span::styled(format!("  {t}"), paint.dim()));
    }
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(Span::styled(right, paint.status(status)));
    Line::from(spans)
}

/// Cuts `text` to `room` characters, marking the cut with `…`.
fn truncate(text: &str, room: usize) -> String {
    let first_line = text.lines().next().unwrap_or("");
    if first_line.chars().count() <= room && first_line.len() == text.len() {
        return first_line.to_owned();
    }
    if room == 0 {
        return String::new();
    }
    let mut out: String = first_line.chars().take(room - 1).collect();
    out.push('…');
    out
}

fn field<'a>(label: &'static str, value: impl Into<Span<'a>>, paint: &Paint) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<9} "), paint.label()),
        value.into(),
    ])
}

fn detail(app: &AppState, frame: &mut Frame, area: Rect, paint: &Paint) {
    let block = Block::bordered().title(" detail ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(idx) = app.current() else {
        return;
    };
    let item = app.plan.item(idx);
    let status = app.statuses[idx.index()];
    let mut lines = vec![Line::from(vec![
        Span::styled(item.id.to_string(), paint.bold()),
        Span::raw(format!("  {}", item.title)),
    ])];
    let s = app.state.items.get(&item.id);
    let mut status_text = format!("{} {}", glyph(status), status.as_str().replace('_', " "));
    if let Some(open) = s.and_then(|s| s.open_attempt()) {
        status_text.push_str(&format!(
            ", attempt {} for {}",
            open.number,
            clock(elapsed(open.started.0, app.now))
        ));
    }
    lines.push(field(
        "status",
        Span::styled(status_text, paint.status(status)),
        paint,
    ));
    if item.kind.is_container() {
        let (done, total) = app.progress[idx.index()];
        lines.push(field(
            "tasks",
            format!("{done} of {total} merged or resolved"),
            paint,
        ));
    }
    if let Some(paused) = app.paused_text(idx) {
        lines.push(field(
            "paused",
            Span::styled(
                paused.trim_start_matches("paused ").to_owned(),
                paint.status(Status::Retrying),
            ),
            paint,
        ));
    }
    if let Some(s) = s {
        if let Some(reason) = &s.reason {
            lines.push(field("reason", reason.clone(), paint));
        }
        match &s.merge_problem {
            Some(MergeProblem::Conflicts { files }) => {
                lines.push(field("conflicts", files.join(", "), paint));
            }
            Some(MergeProblem::Check { name, log, .. }) => {
                let log = log.as_ref().map(|l| format!(", log {}", l.display()));
                lines.push(field(
                    "check",
                    format!("`{name}` failed{}", log.unwrap_or_default()),
                    paint,
                ));
            }
            Some(MergeProblem::Review { by, reason }) => {
                lines.push(field("review", format!("`{by}` rejected: {reason}"), paint));
            }
            None => {}
        }
        if let Some(radar) = s.radar.as_ref().filter(|r| !r.overlaps.is_empty()) {
            let text: Vec<String> = radar
                .overlaps
                .iter()
                .map(|(other, paths)| format!("{other}: {}", paths.join(", ")))
                .collect();
            lines.push(field("overlaps", text.join("; "), paint));
        }
        if let Some(branch) = &s.branch {
            lines.push(field("branch", branch.clone(), paint));
        }
        if let Some(worktree) = &s.worktree {
            lines.push(field("worktree", worktree.display().to_string(), paint));
        }
        if let Some(job) = s.attempts.last().and_then(|a| a.job.as_ref()) {
            let place = match &job.node {
                Some(node) => format!("{} job {} on {node}", job.executor, job.id),
                None => format!("{} job {}, queued", job.executor, job.id),
            };
            lines.push(field("job", place, paint));
        }
    }
    if !item.depends_on.is_empty() {
        let mut spans = Vec::new();
        for (n, dep) in item.depends_on.iter().enumerate() {
            let st = app.statuses[dep.target.index()];
            if n > 0 {
                spans.push(Span::raw(" "));
            }
            spans.push(Span::styled(format!("{} ", glyph(st)), paint.status(st)));
            let optional = if dep.required { "" } else { "?" };
            spans.push(Span::raw(format!(
                "{}{optional}",
                app.plan.item(dep.target).id
            )));
        }
        let mut line = vec![Span::styled(format!("{:<9} ", "needs"), paint.label())];
        line.extend(spans);
        lines.push(Line::from(line));
    }
    if let Some(s) = s {
        for (n, a) in s.attempts.iter().rev().take(4).enumerate() {
            let label = if n == 0 { "attempts" } else { "" };
            lines.push(field(label, attempt_text(a, app.now), paint));
        }
        if let Some(summary) = &s.summary {
            lines.push(field("summary", summary.clone(), paint));
        }
        if let Some(usage) = Usage::total(&s.attempts) {
            lines.push(field("usage", usage.to_string(), paint));
        }
    }
    if let Some(commits) = app.commits.get(&item.id) {
        for (n, (sha, subject)) in commits.iter().take(3).enumerate() {
            let label = if n == 0 { "commits" } else { "" };
            lines.push(field(label, format!("{sha} {subject}"), paint));
        }
    }
    if let Some(commit) = s.and_then(|s| s.merge_commit.as_ref()) {
        let mut short = commit.clone();
        short.truncate(crate::git::refs::SHORT_ID);
        lines.push(field("merged as", short, paint));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

fn attempt_text(a: &Attempt, now: SystemTime) -> String {
    let took = match a.finished {
        Some(f) => elapsed(a.started.0, f.0),
        None => elapsed(a.started.0, now),
    };
    let outcome = match &a.outcome {
        None => "running".to_owned(),
        Some(Outcome::Succeeded { commits }) => {
            format!(
                "ok, {}",
                crate::text::plural(*commits as usize, "commit", "commits")
            )
        }
        Some(Outcome::Failed { reason, .. }) => format!("failed: {reason}"),
        Some(Outcome::Interrupted { reason }) => format!("interrupted: {reason}"),
        Some(Outcome::Cancelled) => "cancelled".to_owned(),
    };
    format!("#{} {} · {outcome}", a.number, clock(took))
}

/// The merge queue: the candidates being checked (each batch once, saying
/// whether it is checked on top of the one above), then the tasks waiting,
/// in the order they join, then those waiting for a person's review.
fn queue(app: &AppState, frame: &mut Frame, area: Rect, paint: &Paint) {
    let (waiting, _) = &app.queue;
    let candidates = &app.state.candidates;
    let reviewing: Vec<&FullId> = app
        .plan
        .tasks()
        .iter()
        .filter(|t| app.statuses[t.index()] == Status::AwaitingReview)
        .map(|t| &app.plan.item(*t).id)
        .collect();
    let in_queue: usize = candidates.iter().map(|c| c.tasks.len()).sum::<usize>() + waiting.len();
    let block = Block::bordered().title(format!(" merge queue ({in_queue}) "));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let mut lines = Vec::new();
    let mut above: Option<&str> = None;
    for c in candidates {
        let ids: Vec<&str> = c.tasks.iter().map(|t| t.as_str()).collect();
        let (status, what) = match c.check {
            CandidateCheck::Running { slot } => {
                (Status::Merging, format!("checking ({})", slot + 1))
            }
            CandidateCheck::Passed => (Status::Merged, "passed".to_owned()),
            CandidateCheck::Failed => (Status::Failed, "red: bisecting".to_owned()),
            CandidateCheck::Landing => (Status::Merging, "landing".to_owned()),
        };
        let top = if above == Some(c.onto.as_str()) {
            "↳ "
        } else {
            ""
        };
        lines.push(Line::styled(
            format!("{} {top}{}  {what}", glyph(status), ids.join(" ")),
            paint.status(status),
        ));
        above = Some(c.commit.as_str());
    }
    let last_refusal = app.events.iter().rev().find(|e| {
        matches!(
            e.kind,
            EventKind::MergeConflicted { .. }
                | EventKind::CheckFailed { .. }
                | EventKind::MergeWaiting { .. }
        )
    });
    let reserve = usize::from(last_refusal.is_some()) + reviewing.len().min(1);
    let room = usize::from(inner.height).saturating_sub(lines.len() + reserve);
    for (n, id) in waiting.iter().enumerate().take(room) {
        let more = if n + 1 == room && waiting.len() > room {
            format!("  (+{} more)", waiting.len() - room)
        } else {
            String::new()
        };
        lines.push(Line::raw(format!("{}. {id}{more}", n + 1)));
    }
    if !reviewing.is_empty() {
        let ids: Vec<&str> = reviewing.iter().map(|t| t.as_str()).collect();
        lines.push(Line::styled(
            format!(
                "{} review: {}",
                glyph(Status::AwaitingReview),
                ids.join(" ")
            ),
            paint.status(Status::AwaitingReview),
        ));
    }
    if lines.is_empty() {
        lines.push(Line::styled("empty", paint.dim()));
    }
    if let Some(e) = last_refusal.and_then(narrate::describe) {
        let text = format!("last: {}", e.text);
        let status = e.word.map_or(Status::Failed, |(s, _)| s);
        lines.push(Line::styled(text, paint.status(status)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn log_title(app: &AppState) -> String {
    match &app.log.id {
        Some(id) if app.log.attempt > 0 => format!(" log {id} #{} ", app.log.attempt),
        Some(id) => format!(" log {id} "),
        None => " log ".to_owned(),
    }
}

fn log_tail(app: &AppState, frame: &mut Frame, area: Rect, paint: &Paint) {
    let block = Block::bordered().title(log_title(app));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = usize::from(inner.height);
    let lines: Vec<Line> = if app.log.lines.is_empty() {
        vec![Line::styled(
            if app.log.id.is_some() {
                "no output yet"
            } else {
                "select a task to see its agent's output"
            },
            paint.dim(),
        )]
    } else {
        let start = app.log.lines.len().saturating_sub(height);
        app.log.lines[start..]
            .iter()
            .map(|l| Line::raw(l.as_str()))
            .collect()
    };
    frame.render_widget(Paragraph::new(lines), inner);
}

fn log_screen(app: &AppState, frame: &mut Frame, area: Rect, scroll: usize, paint: &Paint) {
    let block = Block::bordered()
        .title(log_title(app))
        .title_bottom(" ↑↓ PgUp PgDn g G scroll · Esc back ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = usize::from(inner.height);
    let end = app.log.lines.len().saturating_sub(scroll);
    let start = end.saturating_sub(height);
    let lines: Vec<Line> = app.log.lines[start..end]
        .iter()
        .map(|l| Line::raw(l.as_str()))
        .collect();
    if lines.is_empty() {
        frame.render_widget(Paragraph::new("no output yet").style(paint.dim()), inner);
        return;
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn feed(app: &AppState, frame: &mut Frame, area: Rect, paint: &Paint) {
    let block = Block::bordered().title(" events ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = usize::from(inner.height);
    let mut lines: Vec<Line> = app
        .events
        .iter()
        .rev()
        .filter_map(|e| {
            let d = narrate::describe(e)?;
            let at = match app.run_started {
                Some(start) if e.ts.0 >= start => {
                    let s = elapsed(start, e.ts.0).as_secs();
                    format!("{:02}:{:02} ", s / 60, s % 60)
                }
                _ => String::new(),
            };
            let mut spans = vec![Span::styled(at, paint.dim())];
            if let Some((status, word)) = d.word {
                spans.push(Span::styled(format!("{word} "), paint.status(status)));
            }
            // A report of several lines (a plan change) reads as one row.
            let mut rows = d.text.lines().map(str::trim);
            let head = rows.next().unwrap_or_default().to_owned();
            let rest: Vec<&str> = rows.collect();
            let text = if rest.is_empty() {
                head
            } else {
                format!("{head} {}", rest.join("; "))
            };
            spans.push(Span::raw(text));
            Some(Line::from(spans))
        })
        .take(height)
        .collect();
    lines.reverse();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn footer_line<'a>(app: &'a AppState, paint: &Paint) -> Line<'a> {
    if let Mode::Search(text) = &app.mode {
        return Line::from(vec![
            Span::styled(format!("/{text}▏"), paint.bold()),
            Span::styled("  Enter keep · Esc clear", paint.dim()),
        ]);
    }
    if let Some(message) = &app.message {
        return Line::styled(message.as_str(), paint.bold());
    }
    let keys = if app.run_ended.is_some() {
        "↑↓ move  ⏎ open  / search  f filter  l log  ? help  q quit (the run has ended)"
    } else if app.live.is_some() {
        "↑↓ move  ⏎ open  / search  f filter  l log  r retry  c cancel  x resolve  ? help  q quit  a approve  n reject  v revert"
    } else {
        "↑↓ move  ⏎ open  / search  f filter  l log  ? help  q quit  (read-only: no run is live)"
    };
    Line::styled(keys, paint.dim())
}

fn confirm_text(action: Action, id: &str) -> (String, &'static str) {
    match action {
        Action::Retry => (
            format!("Retry `{id}`?"),
            "A new attempt starts when a slot is free; earlier work stays on its branch.",
        ),
        Action::Cancel => (
            format!("Cancel `{id}`?"),
            "Its agent is stopped; what it committed stays on its branch.",
        ),
        Action::Resolve => (
            format!("Mark `{id}` resolved?"),
            "Its dependents may start; its branch is not merged.",
        ),
        Action::Approve => (
            format!("Approve `{id}`?"),
            "It goes back to the merge queue and lands once its checks pass.",
        ),
        Action::Reject => (
            format!("Reject `{id}`?"),
            "Its agent runs again with your reason.",
        ),
        Action::Revert => (
            format!("Revert `{id}`?"),
            "A commit undoing its work lands on the target, through the checks.",
        ),
    }
}

fn help(frame: &mut Frame, area: Rect, paint: &Paint) {
    let keys = [
        ("↑ ↓ j k", "move; PgUp PgDn g G jump"),
        ("⏎ ← →", "open or close; ← goes to the parent"),
        ("/", "filter by id or title (Esc clears)"),
        (
            "f",
            "cycle status filters: all, failed, running, waiting, finished",
        ),
        ("l", "the selected task's log, full screen"),
        (
            "r c x",
            "retry, cancel, resolve (asks first; sent to the live run)",
        ),
        (
            "a n v",
            "approve, reject (asks why), revert a merged task (asks first)",
        ),
        (
            "q",
            "quit (in `orch run --tui`, asks whether to stop the run)",
        ),
        ("Ctrl-C", "quit; in `orch run --tui`, stop the run"),
    ];
    let mut lines: Vec<Line> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<9} "), paint.bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    // Done and resolved share the merged glyph.
    let legend = Status::ALL
        .iter()
        .filter(|s| !matches!(s, Status::Done | Status::Resolved));
    let mut spans = Vec::new();
    for (n, st) in legend.enumerate() {
        if n == 6 {
            lines.push(Line::from(std::mem::take(&mut spans)));
        }
        spans.push(Span::styled(
            format!("{} {}  ", glyph(*st), st.as_str().replace('_', " ")),
            paint.status(*st),
        ));
    }
    lines.push(Line::from(spans));
    lines.push(Line::raw(""));
    lines.push(Line::styled("any key closes this", paint.dim()));
    popup(frame, area, "help", lines, paint);
}

fn popup(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line>, paint: &Paint) {
    let width = lines
        .iter()
        .map(|l| l.width() as u16 + 4)
        .max()
        .unwrap_or(20)
        .min(area.width.saturating_sub(2));
    let height = (lines.len() as u16 + 2).min(area.height);
    let rect = area.centered(Constraint::Length(width), Constraint::Length(height));
    frame.render_widget(Clear, rect);
    let block = Block::bordered()
        .title(format!(" {title} "))
        .border_style(paint.bold());
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::config::MergeStrategy;
    use crate::dash::app::Msg;
    use crate::plan::{FullId, Rules};
    use crate::state::events::{Event, Merged};
    use crate::state::model::{Queued, RunRecord, Timestamp};
    use crate::state::{ItemState, State};

    const PLAN: &str = r#"
[[phase]]
id = "P1"
title = "Foundation"
[[phase.milestone]]
id = "M1"
title = "Storage"
[[phase.milestone.task]]
id = "T1"
title = "Define the schema"
[[phase.milestone.task]]
id = "T2"
title = "Write the model layer"
depends_on = ["P1.M1.T1"]
[[phase.milestone.task.subtask]]
id = "S1"
title = "Structs"
[[phase.milestone.task.subtask]]
id = "S2"
title = "Queries"
[[phase.milestone.task]]
id = "T3"
title = "Import legacy data"
depends_on = ["P1.M1.T1"]
[[phase.milestone.task]]
id = "T4"
title = "Export"
[[phase]]
id = "P2"
title = "Interface"
[[phase.milestone]]
id = "M1"
title = "CLI"
[[phase.milestone.task]]
id = "T1"
title = "Parse arguments"
depends_on = ["P1.M1.T2", "P1.M1.T3"]
"#;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn id(s: &str) -> FullId {
        FullId::parse(s).unwrap()
    }

    fn event(seq: u64, secs: u64, unit: Option<&str>, kind: EventKind) -> Event {
        Event {
            seq,
            ts: Timestamp(at(secs)),
            id: unit.map(id),
            kind,
        }
    }

    fn started(attempt: u32, title: &str) -> EventKind {
        EventKind::TaskStarted {
            attempt,
            title: title.to_owned(),
            purpose: None,
            confined: false,
        }
    }

    fn completed(commits: u32, log: &[(&str, &str)]) -> EventKind {
        EventKind::TaskCompleted {
            attempt: 1,
            commits: Some(commits),
            log: log
                .iter()
                .map(|(sha, subject)| (sha.to_string(), subject.to_string()))
                .collect(),
            duration_ms: None,
        }
    }

    fn attempt(number: u32, from: u64, to: Option<u64>, outcome: Option<Outcome>) -> Attempt {
        Attempt {
            number,
            started: Timestamp(at(from)),
            finished: to.map(|t| Timestamp(at(t))),
            outcome,
            purpose: None,
            job: None,
            confined: false,
            agent: None,
            session: None,
            resumed: false,
            usage: None,
            paused_until: None,
        }
    }

    /// A run 5 minutes in: one task merged, one running on its second
    /// attempt, one waiting to merge, one failed.
    fn app() -> AppState {
        let plan = Arc::new(
            crate::plan::from_bytes(Path::new("plan.toml"), PLAN.as_bytes(), &Rules::default())
                .unwrap(),
        );
        let mut state = State {
            target: Some("main".to_owned()),
            run: Some(RunRecord {
                pid: 4242,
                started: Timestamp(at(0)),
                finished: None,
                plan: None,
            }),
            ..State::default()
        };
        let mut merged = ItemState::new(Status::Merged);
        merged.attempts = vec![attempt(
            1,
            1,
            Some(95),
            Some(Outcome::Succeeded { commits: 2 }),
        )];
        merged.merge_commit = Some("4f1c2a9e0b7d".to_owned());
        merged.branch = Some("orch/P1.M1.T1".to_owned());
        state.items.insert(id("P1.M1.T1"), merged);
        let mut running = ItemState::new(Status::Running);
        running.attempts = vec![
            attempt(
                1,
                100,
                Some(160),
                Some(Outcome::Failed {
                    reason: "exit code 1".to_owned(),
                    retry: true,
                }),
            ),
            attempt(2, 175, None, None),
        ];
        running.branch = Some("orch/P1.M1.T2".to_owned());
        running.worktree = Some("../repo.worktrees/P1.M1.T2".into());
        state.items.insert(id("P1.M1.T2"), running);
        let mut waiting = ItemState::new(Status::AwaitingMerge);
        waiting.attempts = vec![attempt(
            1,
            100,
            Some(250),
            Some(Outcome::Succeeded { commits: 1 }),
        )];
        waiting.queued = Some(Queued {
            at: Timestamp(at(250)),
            tip: None,
        });
        state.items.insert(id("P1.M1.T3"), waiting);
        let mut failed = ItemState::new(Status::Failed);
        failed.reason = Some("exit code 2 after 3 attempts".to_owned());
        failed.attempts = vec![attempt(
            3,
            200,
            Some(230),
            Some(Outcome::Failed {
                reason: "exit code 2".to_owned(),
                retry: false,
            }),
        )];
        state.items.insert(id("P1.M1.T4"), failed);
        let mut app = AppState::new(plan, state, at(300));
        app.color = false;
        app.update(Msg::Live(Some(4242)));
        app.update(Msg::Events(vec![
            event(
                1,
                0,
                None,
                EventKind::RunStarted {
                    pid: 4242,
                    target: "main".to_owned(),
                    tasks: 5,
                    no_merge: false,
                    plan_digest: None,
                    sandbox: None,
                },
            ),
            event(2, 1, Some("P1.M1.T1"), started(1, "Define the schema")),
            event(
                3,
                95,
                Some("P1.M1.T1"),
                completed(
                    2,
                    &[
                        ("a1b2c3d4e", "Add schema"),
                        ("0f9e8d7c6", "Add schema tests"),
                    ],
                ),
            ),
            event(
                4,
                99,
                Some("P1.M1.T1"),
                EventKind::TaskMerged {
                    commit: "4f1c2a9e0".to_owned(),
                    how: Merged::Landed {
                        onto: "5dd1759e3".to_owned(),
                        strategy: MergeStrategy::Merge,
                        backup: None,
                        branch_deleted: true,
                        merge_ms: 40,
                    },
                },
            ),
            event(
                5,
                160,
                Some("P1.M1.T2"),
                EventKind::TaskRetrying {
                    attempt: 1,
                    reason: "exit code 1".to_owned(),
                    retry_in_ms: 15000,
                },
            ),
            event(
                6,
                175,
                Some("P1.M1.T2"),
                started(2, "Write the model layer"),
            ),
            event(
                7,
                230,
                Some("P1.M1.T4"),
                EventKind::TaskFailed {
                    attempt: Some(3),
                    reason: "exit code 2".to_owned(),
                },
            ),
            event(8, 250, Some("P1.M1.T3"), completed(1, &[])),
        ]));
        app
    }

    fn key(app: &mut AppState, code: KeyCode) {
        app.update(Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    fn screen(app: &AppState, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| render(app, f)).unwrap();
        let buffer = terminal.backend().buffer();
        let mut out = String::new();
        for y in 0..height {
            let line: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    fn select(app: &mut AppState, unit: &str) {
        key(app, KeyCode::Home);
        while app
            .current()
            .map(|i| app.plan.item(i).id.as_str() != unit)
            .unwrap_or(false)
        {
            key(app, KeyCode::Down);
        }
        let attempt = app
            .state
            .items
            .get(&id(unit))
            .and_then(|s| s.attempts.last())
            .map_or(0, |a| a.number);
        let lines = (1..=30)
            .map(|i| format!("step {i}: editing src/model.rs"))
            .collect();
        app.update(Msg::Log {
            id: id(unit),
            attempt,
            lines,
        });
    }

    #[test]
    fn issue_14_the_queue_shows_each_batch_and_the_detail_the_radar() {
        let mut app = app();
        let mut state = app.state.clone();
        state.candidates = vec![
            crate::state::model::Candidate {
                commit: "c1".to_owned(),
                onto: "t0".to_owned(),
                tasks: vec![id("P1.M1.T3"), id("P1.M1.T4")],
                check: CandidateCheck::Running { slot: 0 },
            },
            crate::state::model::Candidate {
                commit: "c2".to_owned(),
                onto: "c1".to_owned(),
                tasks: vec![id("P2.M1.T1")],
                check: CandidateCheck::Running { slot: 1 },
            },
        ];
        if let Some(t2) = state.items.get_mut(&id("P1.M1.T2")) {
            t2.radar = Some(crate::state::model::Radar {
                tip: "t".to_owned(),
                changes: vec!["src/model.rs".to_owned()],
                overlaps: [(id("P1.M1.T3"), vec!["src/model.rs".to_owned()])].into(),
            });
        }
        app.update(Msg::State(Box::new(state)));
        select(&mut app, "P1.M1.T2");
        let text = screen(&app, 100, 30);
        assert!(text.contains("⇡ P1.M1.T3 P1.M1.T4  checking (1)"), "{text}");
        assert!(text.contains("⇡ ↳ P2.M1.T1  checking (2)"), "{text}");
        assert!(text.contains("overlaps  P1.M1.T3: src/model.rs"), "{text}");
    }

    #[test]
    fn main_view_at_80_by_24() {
        let mut app = app();
        select(&mut app, "P1.M1.T2");
        insta::assert_snapshot!(screen(&app, 80, 24), @"
        orch → main  live (pid 4242) 5m00s  ·1 ●1 ◐1 ✔1 ✘1  0.2/min ETA 15m00s
        ┌ plan (11 items) ──────────────────────────┐┌ detail ─────────────────────────┐
        │▾ ● P1  Foundation                      1/4││P1.M1.T2  Write the model layer  │
        │  ▾ ● P1.M1  Storage                    1/4││status    ● running, attempt 2   │
        │      ✔ P1.M1.T1  Define the schema  merged││for 2m05s                        │
        │    ▸ ● P1.M1.T2  Write t… running #2 2m05s││branch    orch/P1.M1.T2          │
        │      ◐ P1.M1.T3  Import le… awaiting merge││worktree                         │
        │      ✘ P1.M1.T4  Export             failed││../repo.worktrees/P1.M1.T2       │
        │▾ · P2  Interface                       0/1││needs     ✔ P1.M1.T1             │
        │  ▾ · P2.M1  CLI                        0/1││attempts  #2 2m05s · running     │
        │      · P2.M1.T1  Parse arguments   pending││          #1 1m00s · failed: exit│
        │                                           │└─────────────────────────────────┘
        │                                           │┌ merge queue (1) ────────────────┐
        │                                           ││1. P1.M1.T3                      │
        │                                           ││                                 │
        │                                           ││                                 │
        └───────────────────────────────────────────┘└─────────────────────────────────┘
        ┌ log P1.M1.T2 #2 ──────────────────────────┐┌ events ─────────────────────────┐
        │step 27: editing src/model.rs              ││02:40 retrying P1.M1.T2  attempt │
        │step 28: editing src/model.rs              ││02:55 started P1.M1.T2  attempt 2│
        │step 29: editing src/model.rs              ││03:50 failed P1.M1.T4  attempt 3:│
        │step 30: editing src/model.rs              ││04:10 done P1.M1.T3  attempt 1, 1│
        └───────────────────────────────────────────┘└─────────────────────────────────┘
        ↑↓ move  ⏎ open  / search  f filter  l log  r retry  c cancel  x resolve  ? help
        ");
    }

    #[test]
    fn a_cluster_job_shows_its_id_and_node() {
        let mut app = app();
        if let Some(s) = app.state.items.get_mut(&id("P1.M1.T2"))
            && let Some(a) = s.attempts.last_mut()
        {
            a.job = Some(crate::state::model::AttemptJob {
                executor: "slurm".to_owned(),
                id: "4242".to_owned(),
                node: Some("node07".to_owned()),
            });
        }
        select(&mut app, "P1.M1.T2");
        let text = screen(&app, 120, 30);
        assert!(
            text.contains("job       slurm job 4242 on node07"),
            "{text}"
        );
    }

    #[test]
    fn a_wide_terminal_shows_titles_and_more_detail() {
        let mut app = app();
        select(&mut app, "P1.M1.T4");
        insta::assert_snapshot!(screen(&app, 120, 30), @"
        orch → main  live (pid 4242) 5m00s  ·1 ●1 ◐1 ✔1 ✘1  0.2/min ETA 15m00s
        ┌ plan (11 items) ────────────────────────────────────────────────┐┌ detail ───────────────────────────────────────────┐
        │▾ ● P1  Foundation                                            1/4││P1.M1.T4  Export                                   │
        │  ▾ ● P1.M1  Storage                                          1/4││status    ✘ failed                                 │
        │      ✔ P1.M1.T1  Define the schema                        merged││reason    exit code 2 after 3 attempts             │
        │    ▸ ● P1.M1.T2  Write the model layer          running #2 2m05s││attempts  #3 30s · failed: exit code 2             │
        │      ◐ P1.M1.T3  Import legacy data               awaiting merge││                                                   │
        │      ✘ P1.M1.T4  Export                                   failed││                                                   │
        │▾ · P2  Interface                                             0/1││                                                   │
        │  ▾ · P2.M1  CLI                                              0/1││                                                   │
        │      · P2.M1.T1  Parse arguments                         pending││                                                   │
        │                                                                 ││                                                   │
        │                                                                 ││                                                   │
        │                                                                 ││                                                   │
        │                                                                 │└───────────────────────────────────────────────────┘
        │                                                                 │┌ merge queue (1) ──────────────────────────────────┐
        │                                                                 ││1. P1.M1.T3                                        │
        │                                                                 ││                                                   │
        │                                                                 ││                                                   │
        │                                                                 ││                                                   │
        │                                                                 ││                                                   │
        └─────────────────────────────────────────────────────────────────┘└───────────────────────────────────────────────────┘
        ┌ log P1.M1.T4 #3 ────────────────────────────────────────────────┐┌ events ───────────────────────────────────────────┐
        │step 26: editing src/model.rs                                    ││01:39 merged P1.M1.T1  4f1c2a9e0                   │
        │step 27: editing src/model.rs                                    ││02:40 retrying P1.M1.T2  attempt 1: exit code 1; ne│
        │step 28: editing src/model.rs                                    ││02:55 started P1.M1.T2  attempt 2: Write the model │
        │step 29: editing src/model.rs                                    ││03:50 failed P1.M1.T4  attempt 3: exit code 2      │
        │step 30: editing src/model.rs                                    ││04:10 done P1.M1.T3  attempt 1, 1 commit           │
        └─────────────────────────────────────────────────────────────────┘└───────────────────────────────────────────────────┘
        ↑↓ move  ⏎ open  / search  f filter  l log  r retry  c cancel  x resolve  ? help  q quit  a approve  n reject  v revert
        ");
    }

    #[test]
    fn help_overlay() {
        let mut app = app();
        key(&mut app, KeyCode::Char('?'));
        insta::assert_snapshot!(screen(&app, 80, 24), @"
        orch → main  live (pid 4242) 5m00s  ·1 ●1 ◐1 ✔1 ✘1  0.2/min ETA 15m00s
        ┌ plan (11 items) ──────────────────────────┐┌ detail ─────────────────────────┐
        │▾ ● P1  Foundation                      1/4││P1.M1.T2  Write the model layer  │
        │  ▾ ● P1.M1  Storage                    1/4││status    ● running, attempt 2   │
        │┌ help ──────────────────────────────────────────────────────────────────────┐│
        ││↑ ↓ j k   move; PgUp PgDn g G jump                                          ││
        ││⏎ ← →     open or close; ← goes to the parent                               ││
        ││/         filter by id or title (Esc clears)                                ││
        ││f         cycle status filters: all, failed, running, waiting, finished     ││
        ││l         the selected task's log, full screen                              ││
        ││r c x     retry, cancel, resolve (asks first; sent to the live run)         ││
        ││a n v     approve, reject (asks why), revert a merged task (asks first)     │┘
        ││q         quit (in `orch run --tui`, asks whether to stop the run)          │┐
        ││Ctrl-C    quit; in `orch run --tui`, stop the run                           ││
        ││                                                                            ││
        ││· pending  ○ ready  ● running  ↻ retrying  ◐ awaiting merge  ⇡ merging      ││
        └│? awaiting review  ≠ conflicted  ✔ merged  ✘ failed  ⊘ blocked  – cancelled │┘
        ┌│↶ reverted                                                                  │┐
        ││                                                                            ││
        │└────────────────────────────────────────────────────────────────────────────┘│
        │                                           ││03:50 failed P1.M1.T4  attempt 3:│
        │                                           ││04:10 done P1.M1.T3  attempt 1, 1│
        └───────────────────────────────────────────┘└─────────────────────────────────┘
        ↑↓ move  ⏎ open  / search  f filter  l log  r retry  c cancel  x resolve  ? help
        ");
    }

    #[test]
    fn confirming_a_cancel() {
        let mut app = app();
        select(&mut app, "P1.M1.T2");
        key(&mut app, KeyCode::Char('c'));
        insta::assert_snapshot!(screen(&app, 80, 24), @"
        orch → main  live (pid 4242) 5m00s  ·1 ●1 ◐1 ✔1 ✘1  0.2/min ETA 15m00s
        ┌ plan (11 items) ──────────────────────────┐┌ detail ─────────────────────────┐
        │▾ ● P1  Foundation                      1/4││P1.M1.T2  Write the model layer  │
        │  ▾ ● P1.M1  Storage                    1/4││status    ● running, attempt 2   │
        │      ✔ P1.M1.T1  Define the schema  merged││for 2m05s                        │
        │    ▸ ● P1.M1.T2  Write t… running #2 2m05s││branch    orch/P1.M1.T2          │
        │      ◐ P1.M1.T3  Import le… awaiting merge││worktree                         │
        │      ✘ P1.M1.T4  Export             failed││../repo.worktrees/P1.M1.T2       │
        │▾ · P2  Interface                       0/1││needs     ✔ P1.M1.T1             │
        │  ▾ · P┌ confirm ─────────────────────────────────────────────────────┐ng     │
        │      ·│Cancel `P1.M1.T2`?                                            │d: exit│
        │       │Its agent is stopped; what it committed stays on its branch.  │───────┘
        │       │                                                              │───────┐
        │       │y: yes    any other key: no                                   │       │
        │       └──────────────────────────────────────────────────────────────┘       │
        │                                           ││                                 │
        └───────────────────────────────────────────┘└─────────────────────────────────┘
        ┌ log P1.M1.T2 #2 ──────────────────────────┐┌ events ─────────────────────────┐
        │step 27: editing src/model.rs              ││02:40 retrying P1.M1.T2  attempt │
        │step 28: editing src/model.rs              ││02:55 started P1.M1.T2  attempt 2│
        │step 29: editing src/model.rs              ││03:50 failed P1.M1.T4  attempt 3:│
        │step 30: editing src/model.rs              ││04:10 done P1.M1.T3  attempt 1, 1│
        └───────────────────────────────────────────┘└─────────────────────────────────┘
        ↑↓ move  ⏎ open  / search  f filter  l log  r retry  c cancel  x resolve  ? help
        ");
    }

    #[test]
    fn full_screen_log_scrolled_up() {
        let mut app = app();
        select(&mut app, "P1.M1.T2");
        key(&mut app, KeyCode::Char('l'));
        key(&mut app, KeyCode::Up);
        key(&mut app, KeyCode::Up);
        insta::assert_snapshot!(screen(&app, 80, 12), @"
        ┌ log P1.M1.T2 #2 ─────────────────────────────────────────────────────────────┐
        │step 19: editing src/model.rs                                                 │
        │step 20: editing src/model.rs                                                 │
        │step 21: editing src/model.rs                                                 │
        │step 22: editing src/model.rs                                                 │
        │step 23: editing src/model.rs                                                 │
        │step 24: editing src/model.rs                                                 │
        │step 25: editing src/model.rs                                                 │
        │step 26: editing src/model.rs                                                 │
        │step 27: editing src/model.rs                                                 │
        │step 28: editing src/model.rs                                                 │
        └ ↑↓ PgUp PgDn g G scroll · Esc back ──────────────────────────────────────────┘
        ");
    }

    #[test]
    fn searching_and_filtering() {
        let mut app = app();
        key(&mut app, KeyCode::Char('f'));
        insta::assert_snapshot!(screen(&app, 80, 24).lines().take(6).collect::<Vec<_>>().join("\n"), @"
        orch → main  live (pid 4242) 5m00s  ·1 ●1 ◐1 ✔1 ✘1  0.2/min ETA 15m00s
        ┌ plan: failed ─────────────────────────────┐┌ detail ─────────────────────────┐
        │▾ ● P1  Foundation                      1/4││P1.M1.T4  Export                 │
        │  ▾ ● P1.M1  Storage                    1/4││status    ✘ failed               │
        │      ✘ P1.M1.T4  Export             failed││reason    exit code 2 after 3    │
        │                                           ││attempts                         │
        ");
        key(&mut app, KeyCode::Char('f'));
        key(&mut app, KeyCode::Char('f'));
        key(&mut app, KeyCode::Char('f'));
        key(&mut app, KeyCode::Char('f'));
        key(&mut app, KeyCode::Char('/'));
        for c in "model".chars() {
            key(&mut app, KeyCode::Char(c));
        }
        insta::assert_snapshot!(screen(&app, 80, 24), @"
        orch → main  live (pid 4242) 5m00s  ·1 ●1 ◐1 ✔1 ✘1  0.2/min ETA 15m00s
        ┌ plan: /model ─────────────────────────────┐┌ detail ─────────────────────────┐
        │▾ ● P1  Foundation                      1/4││P1.M1.T2  Write the model layer  │
        │  ▾ ● P1.M1  Storage                    1/4││status    ● running, attempt 2   │
        │    ▾ ● P1.M1.T2  Write t… running #2 2m05s││for 2m05s                        │
        │                                           ││branch    orch/P1.M1.T2          │
        │                                           ││worktree                         │
        │                                           ││../repo.worktrees/P1.M1.T2       │
        │                                           ││needs     ✔ P1.M1.T1             │
        │                                           ││attempts  #2 2m05s · running     │
        │                                           ││          #1 1m00s · failed: exit│
        │                                           │└─────────────────────────────────┘
        │                                           │┌ merge queue (1) ────────────────┐
        │                                           ││1. P1.M1.T3                      │
        │                                           ││                                 │
        │                                           ││                                 │
        └───────────────────────────────────────────┘└─────────────────────────────────┘
        ┌ log P1.M1.T2 ─────────────────────────────┐┌ events ─────────────────────────┐
        │no output yet                              ││02:40 retrying P1.M1.T2  attempt │
        │                                           ││02:55 started P1.M1.T2  attempt 2│
        │                                           ││03:50 failed P1.M1.T4  attempt 3:│
        │                                           ││04:10 done P1.M1.T3  attempt 1, 1│
        └───────────────────────────────────────────┘└─────────────────────────────────┘
        /model▏  Enter keep · Esc clear
        ");
    }

    #[test]
    fn a_tiny_terminal_gets_a_note() {
        insta::assert_snapshot!(screen(&app(), 30, 6), @"
        orch dash needs at least
        40×10; press q to quit
        ");
    }

    #[test]
    fn colour_follows_the_setting() {
        let mut app = app();
        app.color = true;
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| render(&app, f)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        let colored = buffer
            .content()
            .iter()
            .filter(|c| c.fg != Color::Reset)
            .count();
        assert!(colored > 0);
        app.color = false;
        terminal.draw(|f| render(&app, f)).unwrap();
        let buffer = terminal.backend().buffer();
        assert_eq!(
            buffer
                .content()
                .iter()
                .filter(|c| c.fg != Color::Reset)
                .count(),
            0
        );
    }

    #[test]
    fn the_selection_is_reversed_without_colour() {
        let mut app = app();
        select(&mut app, "P1.M1.T3");
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        terminal.draw(|f| render(&app, f)).unwrap();
        let buffer = terminal.backend().buffer();
        let reversed: Vec<u16> = (0..24)
            .filter(|y| buffer[(10, *y)].modifier.contains(Modifier::REVERSED))
            .collect();
        assert_eq!(reversed, [6], "only the row of P1.M1.T3");
    }

    /// Issue 16: once the run ended, throughput kept falling: it was
    /// divided by the time since the run started, not the run's length.
    #[test]
    fn issue_16_throughput_stops_counting_when_the_run_ends() {
        let mut app = app();
        let live = throughput(&app).unwrap();
        app.update(Msg::Events(vec![event(
            9,
            300,
            None,
            EventKind::RunFinished {
                elapsed_ms: 300_000,
                attempts: 4,
                interrupted: false,
                counts: std::collections::BTreeMap::new(),
                cpu_ms: None,
                peak_rss_kb: None,
                state_writes: 0,
                state_bytes: 0,
            },
        )]));
        app.update(Msg::Live(None));
        app.now = at(3600);
        assert_eq!(throughput(&app), Some(live), "an hour later");
    }

    #[test]
    fn a_paused_agent_and_what_agents_cost_show_in_the_header_and_the_detail() {
        let mut app = app();
        let mut state = app.state.clone();
        let until = at(600);
        state.paused.insert(
            "claude".to_owned(),
            crate::state::model::Pause {
                until: Some(Timestamp(until)),
                cause: crate::state::model::PauseCause::Limit,
                reason: Some("usage limit reached".to_owned()),
                by: Some(id("P1.M1.T2")),
                since: Timestamp(at(290)),
            },
        );
        let t2 = state.items.get_mut(&id("P1.M1.T2")).unwrap();
        t2.status = Status::Retrying;
        t2.attempts[1].outcome = Some(Outcome::Interrupted {
            reason: "usage limit of `claude`".to_owned(),
        });
        t2.attempts[0].usage = Some(Usage {
            input_tokens: Some(1200),
            output_tokens: Some(340),
            cached_tokens: None,
            cost_usd: Some(0.42),
        });
        app.update(Msg::State(Box::new(state)));
        select(&mut app, "P1.M1.T2");
        let shown = screen(&app, 100, 30);
        let clock = crate::when::local(until, app.now);
        let header = shown.lines().next().unwrap();
        assert!(
            header.contains(&format!("⏸ claude until {clock}")),
            "{shown}"
        );
        assert!(header.contains("$0.42"), "{shown}");
        assert!(
            shown.contains(&format!("paused    until {clock} (usage limit of")),
            "{shown}"
        );
        assert!(
            shown.contains("usage     1.2k in, 340 out tokens, $0.4200"),
            "{shown}"
        );
    }
}
