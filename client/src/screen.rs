//! What the user reads: message lines, the live status line of a call and
//! the shell's prompt with what is being typed.
//!
//! ```text
//!   say("bob hung up")  ──┐
//!   status(compact, plain)┼──> Screen ──> a terminal: messages scroll above,
//!   the shell's editor ───┘               one status line updated in place,
//!                                         the prompt and the typed line last
//!                                     ──> not a terminal: plain lines only
//! ```
//!
//! Without a screen installed (`call`, `listen`, the demo) everything is
//! printed as plain lines, as before. The shell installs one: on a terminal
//! a message never splits the line being typed, and the status line is
//! rewritten where it stands instead of scrolling.

use std::io::Write;
use std::sync::{Mutex, MutexGuard, OnceLock};

static SCREEN: OnceLock<Mutex<Screen>> = OnceLock::new();

/// The terminal's state as last drawn.
#[derive(Debug, Default)]
struct Screen {
    /// Draw in place (a terminal); plain lines otherwise.
    tty: bool,
    /// Whether the shell's prompt is shown (a terminal only).
    prompt_on: bool,
    prompt: String,
    /// The line being typed.
    input: String,
    /// The live status line, when a call shows one.
    status: Option<String>,
    /// What is on screen now below the messages: the status line and the
    /// prompt line.
    drawn_status: bool,
    drawn_prompt: bool,
    /// Set by every message or status update (see [`touched`]).
    touched: bool,
}

fn screen() -> Option<MutexGuard<'static, Screen>> {
    SCREEN
        .get()
        .map(|m| m.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Installs the screen (once per process): `tty` draws in place with a
/// prompt, otherwise plain lines.
pub fn install(tty: bool, prompt: &str) {
    let _ = SCREEN.set(Mutex::new(Screen {
        tty,
        prompt_on: tty,
        prompt: prompt.to_string(),
        ..Screen::default()
    }));
    if let Some(mut s) = screen() {
        s.draw();
    }
}

/// Whether an installed screen draws on a terminal.
pub fn is_tty() -> bool {
    screen().is_some_and(|s| s.tty)
}

/// Prints one message line (above the status line and the prompt).
pub fn say(line: impl AsRef<str>) {
    let line = line.as_ref();
    match screen() {
        Some(mut s) => {
            s.touched = true;
            if s.tty {
                s.erase();
                s.out(line);
                s.out("\n");
                s.draw();
            } else {
                println!("{line}");
            }
        }
        None => println!("{line}"),
    }
}

/// The live status: `compact` (under 80 columns) rewritten in place on a
/// terminal, `plain` printed as a line otherwise.
pub fn status(compact: &str, plain: &str) {
    match screen() {
        Some(mut s) if s.tty => {
            s.touched = true;
            s.erase();
            s.status = Some(compact.to_string());
            s.draw();
        }
        Some(mut s) => {
            s.touched = true;
            drop(s);
            println!("{plain}");
        }
        None => println!("{plain}"),
    }
}

/// How a call is getting on before it has a status ("calling bob...
/// ringing"): the status line on a terminal, a plain line otherwise. It
/// does not count as [`touched`].
pub fn progress(text: &str) {
    match screen() {
        Some(mut s) if s.tty => {
            s.erase();
            s.status = Some(text.to_string());
            s.draw();
        }
        _ => println!("{text}"),
    }
}

/// Takes the status line away (the call ended).
pub fn clear_status() {
    if let Some(mut s) = screen() {
        if s.tty {
            s.erase();
            s.status = None;
            s.draw();
        }
    }
}

/// Clears the mark [`touched`] reads.
pub fn mark() {
    if let Some(mut s) = screen() {
        s.touched = false;
    }
}

/// Whether anything was said or shown since [`mark`].
pub fn touched() -> bool {
    screen().is_some_and(|s| s.touched)
}

/// The shell's editor changed the typed line.
pub(crate) fn set_input(input: &str) {
    if let Some(mut s) = screen() {
        if s.tty {
            s.erase();
            s.input = input.to_string();
            s.draw();
        }
    }
}

/// The shell's editor took a line: it stays on screen after the prompt.
pub(crate) fn enter(line: &str) {
    if let Some(mut s) = screen() {
        if s.tty {
            s.erase();
            s.input.clear();
            let shown = format!("{}{line}\n", s.prompt);
            s.out(&shown);
            s.draw();
        }
    }
}

/// Leaves the terminal with the cursor on a fresh line (the shell quits).
pub fn close() {
    if let Some(mut s) = screen() {
        if s.tty {
            s.erase();
            s.status = None;
            s.prompt_on = false;
        }
    }
}

impl Screen {
    fn out(&mut self, text: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes());
    }

    /// Removes the status and prompt lines; the cursor is left at the
    /// start of the first of them.
    fn erase(&mut self) {
        if !self.tty {
            return;
        }
        let mut seq = String::new();
        if self.drawn_prompt {
            seq.push_str("\r\x1b[2K");
        }
        if self.drawn_status {
            if self.drawn_prompt {
                seq.push_str("\x1b[1A");
            }
            seq.push_str("\r\x1b[2K");
        }
        self.drawn_prompt = false;
        self.drawn_status = false;
        self.out(&seq);
    }

    /// Draws the status line and the prompt with the typed line, cut to
    /// the terminal's width so that neither wraps.
    fn draw(&mut self) {
        if !self.tty {
            return;
        }
        let width = terminal_width().saturating_sub(1).max(20);
        let mut text = String::new();
        if let Some(status) = &self.status {
            text.push_str(&cut(status, width));
            self.drawn_status = true;
            if self.prompt_on {
                text.push('\n');
            }
        }
        if self.prompt_on {
            let typed = self.input.chars().count();
            let room = width.saturating_sub(self.prompt.chars().count());
            // The end of a long line stays visible.
            let shown: String = self
                .input
                .chars()
                .skip(typed.saturating_sub(room))
                .collect();
            text.push_str(&self.prompt);
            text.push_str(&shown);
            self.drawn_prompt = true;
        }
        self.out(&text);
        let _ = std::io::stdout().lock().flush();
    }
}

fn cut(s: &str, width: usize) -> String {
    s.chars().take(width).collect()
}

/// The terminal's columns (80 when it cannot be read).
fn terminal_width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stdout())
        .ok()
        .map(|w| usize::from(w.ws_col))
        .filter(|w| *w > 0)
        .unwrap_or(80)
}

/// What the compact status line shows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Live<'a> {
    /// The other user.
    pub peer: &'a str,
    /// Since the answer.
    pub elapsed: std::time::Duration,
    /// The media path (`direct`, `turn-relay`, `server-relay`).
    pub path: &'a str,
    /// The round-trip time, when measured.
    pub rtt: Option<std::time::Duration>,
    /// The fraction of the peer's packets lost.
    pub loss: f64,
    /// Whether the microphone is muted.
    pub muted: bool,
    /// The levels sent and played, dBFS, once audio flows.
    pub levels: Option<(f32, f32)>,
}

/// The status line on a terminal: under 80 columns, with a meter for the
/// microphone and one for the speaker.
pub fn compact_status(l: &Live<'_>) -> String {
    let secs = l.elapsed.as_secs();
    let peer: String = l.peer.chars().take(16).collect();
    let rtt = l
        .rtt
        .map(|r| format!("{}ms", r.as_millis().min(9999)))
        .unwrap_or_else(|| "-".into());
    let (mic, spk) = l.levels.unwrap_or((-120.0, -120.0));
    let mic = if l.muted {
        "muted".to_string()
    } else {
        meter(mic)
    };
    format!(
        "{peer} {}:{:02} {} rtt {rtt} loss {:.1}% mic {mic} spk {}",
        (secs / 60).min(999),
        secs % 60,
        l.path.chars().take(12).collect::<String>(),
        (l.loss * 100.0).clamp(0.0, 100.0),
        meter(spk),
    )
}

/// A level meter of five cells for a level in dBFS (-60 and below is
/// empty, -6 and above is full).
pub fn meter(dbfs: f32) -> String {
    let cells = (((dbfs + 60.0) / 54.0) * 5.0).round().clamp(0.0, 5.0) as usize;
    let mut m = String::with_capacity(5);
    for i in 0..5 {
        m.push(if i < cells { '#' } else { '.' });
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_has_five_cells_from_silence_to_loud() {
        assert_eq!(meter(-120.0), ".....");
        assert_eq!(meter(-60.0), ".....");
        assert_eq!(meter(-33.0), "###..");
        assert_eq!(meter(0.0), "#####");
        assert_eq!(meter(f32::NAN).chars().count(), 5);
    }

    #[test]
    fn the_compact_status_fits_in_80_columns_even_at_its_longest() {
        let long = Live {
            peer: "a-very-long-user-name-indeed",
            elapsed: std::time::Duration::from_secs(999_999),
            path: "server-relay",
            rtt: Some(std::time::Duration::from_secs(100)),
            loss: 1.0,
            muted: false,
            levels: Some((0.0, -30.0)),
        };
        let line = compact_status(&long);
        assert!(line.chars().count() < 80, "{line} ({})", line.len());
        assert!(line.contains("mic ##### spk ###.."), "{line}");
        let muted = compact_status(&Live {
            muted: true,
            levels: None,
            ..long
        });
        assert!(muted.contains("mic muted"), "{muted}");
    }

    #[test]
    fn a_long_status_is_cut_to_the_width() {
        assert_eq!(cut("abcdef", 3), "abc");
        assert_eq!(cut("ab", 3), "ab");
    }
}
