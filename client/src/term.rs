//! The shell's input: on a terminal, a small line editor in raw mode (the
//! typed line is redrawn under the messages by [`crate::screen`], Ctrl-C
//! is a key, not a signal); otherwise whole lines from stdin.
//!
//! Both feed one channel of [`Key`]s; [`Editor`] is the sans-IO part (bytes
//! in, keys out) and is tested without a terminal.

use std::io::Read;
use std::os::fd::AsFd;

use rustix::termios::{self, LocalModes, OptionalActions, Termios};
use tokio::sync::mpsc;

/// What the user did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Key {
    /// A line was entered.
    Line(String),
    /// Ctrl-C (or SIGINT).
    Interrupt,
    /// End of input (Ctrl-D on an empty line, or stdin closed).
    Eof,
    /// SIGTERM: hang up and quit.
    Terminate,
}

/// Turns keystrokes into lines; sans-IO.
#[derive(Debug, Default)]
pub struct Editor {
    line: String,
    /// Bytes of a UTF-8 character not yet complete.
    pending: Vec<u8>,
    /// Inside an escape sequence (arrow keys and the like, ignored).
    escape: Escape,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    Started,
    Csi,
}

/// What one byte did to the editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Nothing visible.
    None,
    /// The typed line changed (redraw it).
    Changed,
    /// A key for the shell.
    Key(Key),
}

impl Editor {
    /// The line typed so far.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Feeds one byte read from the terminal.
    pub fn feed(&mut self, b: u8) -> Edit {
        match self.escape {
            Escape::Started => {
                self.escape = if b == b'[' || b == b'O' {
                    Escape::Csi
                } else {
                    Escape::None
                };
                return Edit::None;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.escape = Escape::None;
                }
                return Edit::None;
            }
            Escape::None => {}
        }
        match b {
            0x03 => {
                self.line.clear();
                self.pending.clear();
                Edit::Key(Key::Interrupt)
            }
            0x04 if self.line.is_empty() => Edit::Key(Key::Eof),
            b'\r' | b'\n' => Edit::Key(Key::Line(std::mem::take(&mut self.line))),
            0x7f | 0x08 => {
                self.pending.clear();
                self.line.pop();
                Edit::Changed
            }
            // Ctrl-U: the whole line.
            0x15 => {
                self.line.clear();
                Edit::Changed
            }
            0x1b => {
                self.escape = Escape::Started;
                Edit::None
            }
            b if b < 0x20 => Edit::None,
            b => {
                self.pending.push(b);
                match std::str::from_utf8(&self.pending) {
                    Ok(s) => {
                        self.line.push_str(s);
                        self.pending.clear();
                        Edit::Changed
                    }
                    Err(e) if e.error_len().is_some() || self.pending.len() >= 4 => {
                        self.pending.clear();
                        Edit::None
                    }
                    Err(_) => Edit::None,
                }
            }
        }
    }
}

/// The terminal's settings before raw mode; put back when dropped.
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin when it is a terminal (no echo, no line
    /// buffering, Ctrl-C as a key); output processing stays as it was.
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        if !termios::isatty(stdin.as_fd()) {
            return None;
        }
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.local_modes
            .remove(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN);
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, &self.saved);
    }
}

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    termios::isatty(std::io::stdout().as_fd())
}

/// Starts the reader thread: keys from the terminal through the editor
/// (`raw`), or whole lines. It ends with [`Key::Eof`].
pub fn keys(raw: bool) -> mpsc::UnboundedReceiver<Key> {
    let (tx, rx) = mpsc::unbounded_channel();
    // A plain thread: it sits in a blocking read the runtime must not wait for.
    std::thread::spawn(move || {
        if raw {
            read_keys(&tx);
        } else {
            read_lines(&tx);
        }
        let _ = tx.send(Key::Eof);
    });
    rx
}

fn read_keys(tx: &mpsc::UnboundedSender<Key>) {
    let mut editor = Editor::default();
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 64];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            match editor.feed(b) {
                Edit::None => {}
                Edit::Changed => crate::screen::set_input(editor.line()),
                Edit::Key(k) => {
                    if let Key::Line(line) = &k {
                        crate::screen::enter(line);
                    } else {
                        crate::screen::set_input("");
                    }
                    if tx.send(k).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn read_lines(tx: &mpsc::UnboundedSender<Key>) {
    let stdin = std::io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let l = line.trim_end_matches(['\n', '\r']).to_string();
                if tx.send(Key::Line(l)).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(e: &mut Editor, bytes: &[u8]) -> Vec<Key> {
        bytes
            .iter()
            .filter_map(|&b| match e.feed(b) {
                Edit::Key(k) => Some(k),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn typed_keys_become_lines_with_backspace_and_utf8() {
        let mut e = Editor::default();
        assert_eq!(
            feed(&mut e, b"calx\x7fl bob\r"),
            vec![Key::Line("call bob".into())]
        );
        assert_eq!(
            feed(&mut e, "caf\u{e9}\n".as_bytes()),
            vec![Key::Line("caf\u{e9}".into())]
        );
        // Arrow keys are ignored; Ctrl-U clears.
        assert_eq!(
            feed(&mut e, b"ab\x1b[A\x1b[Dc\x15mute\r"),
            vec![Key::Line("mute".into())]
        );
    }

    #[test]
    fn ctrl_c_and_ctrl_d_are_keys_and_bad_bytes_are_dropped() {
        let mut e = Editor::default();
        assert_eq!(feed(&mut e, b"half\x03"), vec![Key::Interrupt]);
        assert_eq!(e.line(), "");
        assert_eq!(feed(&mut e, b"x\x04"), vec![]);
        assert_eq!(feed(&mut e, b"\x7f\x04"), vec![Key::Eof]);
        assert_eq!(feed(&mut e, b"\xff\xfeok\r"), vec![Key::Line("ok".into())]);
    }
}
