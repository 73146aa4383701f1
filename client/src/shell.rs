//! The interactive mode: one connection to the server (re-made with
//! backoff when it is lost), commands typed at a prompt, incoming calls
//! announced with the caller's name.
//!
//! ```text
//!  keys (term.rs) ──┐                         ┌──> screen.rs (messages, status line, prompt)
//!  SIGINT/SIGTERM ──┼──> Shell: idle commands ┤
//!  signaling ───────┘         │               └──> history, config.toml
//!                             └──> a call: run_call_with + in-call commands
//! ```
//!
//! On a terminal the shell reads keys in raw mode: messages never split
//! the typed line, the call's status line is rewritten in place, Ctrl-C
//! hangs up a call and a second Ctrl-C quits. Otherwise it reads lines and
//! prints plain lines, for scripts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cryptic_audio::SinkSpec;
use cryptic_signal::client::Incoming;
use cryptic_signal::profile::{Profile, ProfileLock};
use cryptic_signal::wire::{ErrorCode, KeysFetch, Message, UserId};
use tokio::sync::mpsc;

use crate::call::{run_call_with, CallOptions, CallReport, CallSide, Control};
use crate::config::Config;
use crate::history::{format_record, header, History, Outcome};
use crate::screen::say;
use crate::term::Key;

/// Every command, with its help.
const COMMANDS: &[(&str, &str, &str)] = &[
    ("call", "call USER", "call USER (a user name or an alias from config.toml)"),
    ("accept", "accept", "answer the ringing call (also: answer)"),
    ("reject", "reject", "decline the ringing call (also: decline)"),
    ("hangup", "hangup", "end the call, or cancel it before the answer (also: Ctrl-C)"),
    ("mute", "mute", "send silence instead of the microphone; `unmute` undoes it"),
    ("unmute", "unmute", "send the microphone again"),
    ("stats", "stats", "the call's figures now: path, round-trip time, loss, jitter, bitrate"),
    ("history", "history [N]", "the last N calls (20 if not given)"),
    ("devices", "devices", "the sound devices, the defaults marked *"),
    ("input", "input [NAME]", "use the microphone NAME (an id from `devices`, default, tone, silence, wav:FILE), at once during a call; saved in config.toml"),
    ("output", "output [NAME]", "use the speaker NAME (an id from `devices`, default, null, wav:FILE), at once during a call; saved in config.toml"),
    ("contacts", "contacts", "the aliases of config.toml, and who of share_presence is online"),
    ("help", "help [COMMAND]", "the commands, or one command in full"),
    ("quit", "quit", "leave (also: exit, Ctrl-D, Ctrl-C twice)"),
];

/// How the shell behaves, beyond the call options.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShellOptions {
    /// The options of every call (devices, relay, cipher preference).
    pub call: CallOptions,
    /// Answer every incoming call at once.
    pub auto_answer: bool,
}

impl ShellOptions {
    /// The shell's options around the call options.
    pub fn new(call: CallOptions) -> Self {
        ShellOptions {
            call,
            auto_answer: false,
        }
    }
}

/// Runs the shell until `quit`, end of input, two Ctrl-C or SIGTERM.
pub async fn run_shell(profile_dir: &Path, options: ShellOptions) -> Result<(), String> {
    crate::config::check_profile(profile_dir)?;
    let profile = Profile::load(profile_dir).map_err(|e| e.to_string())?;
    let config = Config::load(profile_dir)?;
    let _lock = ProfileLock::acquire(profile_dir).map_err(|e| e.to_string())?;
    let mut e2e = profile.e2e().map_err(|e| e.to_string())?;
    let servers = crate::link::Servers::from_profile(&profile, &config)?;
    let link = open_link(&servers, &mut e2e).await?;
    let side = CallSide {
        me: link.me,
        e2e,
        sender: link.sender,
        receiver: link.receiver,
        ice_servers: link.ice_servers,
        servers: Some(servers),
    };
    let tty = crate::term::stdout_is_tty();
    let raw = if tty {
        crate::term::RawMode::enter()
    } else {
        None
    };
    crate::screen::install(raw.is_some(), &format!("{}> ", side.me));
    let keys = keys(raw.is_some());
    let mut shell = Shell {
        dir: profile_dir.to_path_buf(),
        config,
        options,
        side,
        online: true,
        backoff: Backoff::default(),
        keys,
        last_interrupt: None,
        quitting: false,
        present: std::collections::BTreeSet::new(),
        call_ended: None,
    };
    shell.share_presence().await;
    say(format!(
        "signed in as {}. Type help for the commands{}.",
        shell.side.me,
        if shell.options.auto_answer {
            "; calls are answered at once (auto-answer)"
        } else {
            ""
        }
    ));
    let result = shell.run().await;
    crate::screen::close();
    drop(raw);
    println!();
    result
}

/// The keys of the terminal or stdin, with SIGINT as Ctrl-C and SIGTERM
/// as a request to hang up and quit.
fn keys(raw: bool) -> mpsc::UnboundedReceiver<Key> {
    let mut rx = crate::term::keys(raw);
    let (tx, out) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            while let Some(k) = rx.recv().await {
                let _ = tx.send(k);
            }
            return;
        };
        loop {
            let k = tokio::select! {
                k = rx.recv() => k.unwrap_or(Key::Eof),
                _ = int.recv() => Key::Interrupt,
                _ = term.recv() => Key::Terminate,
            };
            let end = k == Key::Eof;
            if tx.send(k).is_err() || end {
                return;
            }
        }
    });
    out
}

/// A signaling connection, signed in with keys published.
struct Link {
    me: UserId,
    sender: cryptic_signal::client::Sender,
    receiver: cryptic_signal::client::Receiver,
    ice_servers: Vec<String>,
}

/// Connects (to the first of the server addresses that answers) and
/// publishes keys from `e2e` (the same store across reconnections).
async fn open_link(
    servers: &crate::link::Servers,
    e2e: &mut cryptic_signal::e2e::E2eStore,
) -> Result<Link, String> {
    let wait = Duration::from_secs(10) * u32::try_from(servers.len()).unwrap_or(1);
    let mut conn = tokio::time::timeout(wait, servers.connect_first())
        .await
        .map_err(|_| format!("the server did not answer within {} s", wait.as_secs()))?
        .map_err(|e| format!("cannot reach the server: {e}"))?;
    crate::call::publish_keys(&mut conn, e2e, 10).await?;
    let me = conn.user().clone();
    let ice_servers = conn.ice_servers().to_vec();
    let (sender, receiver) = conn.split();
    Ok(Link {
        me,
        sender,
        receiver,
        ice_servers,
    })
}

/// Reconnection delays: 1, 2, 4 ... 30 s, with a little jitter.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
    next: Option<tokio::time::Instant>,
}

impl Backoff {
    fn schedule(&mut self) {
        let base = 1u64 << self.failures.min(5);
        let ms = base.min(30) * 1000 + u64::from(rand::random::<u16>() % 250);
        self.failures += 1;
        self.next = Some(tokio::time::Instant::now() + Duration::from_millis(ms));
    }
}

/// What a command did to the shell.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Go,
    Quit,
}

struct Shell {
    dir: PathBuf,
    config: Config,
    options: ShellOptions,
    side: CallSide,
    /// Whether the signaling connection is up.
    online: bool,
    backoff: Backoff,
    keys: mpsc::UnboundedReceiver<Key>,
    last_interrupt: Option<Instant>,
    /// A call was ended by a request to quit: quit when it is over.
    quitting: bool,
    /// Mutual presence contacts online now.
    present: std::collections::BTreeSet<UserId>,
    /// When the last call ended.
    call_ended: Option<Instant>,
}

impl Shell {
    async fn run(&mut self) -> Result<(), String> {
        loop {
            let retry = self.backoff.next.unwrap_or_else(far_future);
            tokio::select! {
                key = self.keys.recv() => {
                    if self.key(key.unwrap_or(Key::Eof)).await == Flow::Quit {
                        return Ok(());
                    }
                }
                m = self.side.receiver.recv(), if self.online => self.signal(m).await?,
                _ = tokio::time::sleep_until(retry), if !self.online => self.reconnect().await,
            }
            if self.quitting {
                return Ok(());
            }
        }
    }

    async fn key(&mut self, key: Key) -> Flow {
        match key {
            Key::Line(line) => {
                self.last_interrupt = None;
                self.command(&line).await
            }
            // A second Ctrl-C in a row (the first may have hung up a call).
            Key::Interrupt if self.last_interrupt.is_some() => Flow::Quit,
            Key::Interrupt => {
                self.last_interrupt = Some(Instant::now());
                say("(Ctrl-C again to quit)");
                Flow::Go
            }
            _ => Flow::Quit,
        }
    }

    /// A message from the server while no call runs.
    async fn signal(&mut self, m: Result<Incoming, cryptic_signal::Error>) -> Result<(), String> {
        match m {
            Ok(Incoming::Message(m @ Message::CallInvite(_))) => {
                self.take_call(None, Some(m)).await;
            }
            Ok(Incoming::Message(Message::Presence(p))) => self.presence(p),
            // Fresh TURN credentials from the server: the next call uses them.
            Ok(Incoming::Message(Message::Welcome(w))) => self.side.ice_servers = w.ice_servers,
            Ok(Incoming::Message(Message::Error(e))) if e.call_id.is_none() => {
                match e.code {
                    ErrorCode::SessionReplaced => return Err(
                        "signed in elsewhere: this shell was signed out (the newer sign-in stays)"
                            .into(),
                    ),
                    ErrorCode::CertificateRevoked => {
                        return Err(format!(
                            "signed out by the server: {}",
                            printable(&e.message)
                        ))
                    }
                    _ => tracing::info!(code = ?e.code, "server error"),
                }
            }
            Ok(_) => {}
            Err(cryptic_signal::Error::Protocol(e)) => {
                tracing::debug!("skipped a bad message from the server: {e}")
            }
            Err(e) => self.lost(&e.to_string()),
        }
        Ok(())
    }

    /// A mutual contact came online or went away.
    fn presence(&mut self, p: cryptic_signal::wire::Presence) {
        let changed = if p.online {
            self.present.insert(p.user.clone())
        } else {
            self.present.remove(&p.user)
        };
        if changed {
            say(format!(
                "{} {}",
                p.user,
                if p.online {
                    "is online"
                } else {
                    "went offline"
                }
            ));
        }
    }

    fn lost(&mut self, why: &str) {
        tracing::info!("signaling connection lost: {why}");
        // A loss during a call was said by the call already.
        if self
            .call_ended
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            say("reconnecting to the server in the background");
        } else {
            say(format!(
                "lost the server ({why}): reconnecting in the background"
            ));
        }
        self.online = false;
        self.backoff = Backoff::default();
        self.backoff.schedule();
    }

    async fn reconnect(&mut self) {
        let Some(servers) = self.side.servers.clone() else {
            return;
        };
        match open_link(&servers, &mut self.side.e2e).await {
            Ok(link) => {
                self.side.sender = link.sender;
                self.side.receiver = link.receiver;
                self.side.ice_servers = link.ice_servers;
                self.online = true;
                self.backoff = Backoff::default();
                tracing::info!("reconnected to the server");
                say("reconnected to the server");
                self.present.clear();
                self.share_presence().await;
            }
            Err(e) => {
                tracing::debug!("reconnection failed: {e}");
                self.backoff.schedule();
            }
        }
    }

    async fn command(&mut self, line: &str) -> Flow {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&cmd, args)) = words.split_first() else {
            return Flow::Go;
        };
        match (cmd, args) {
            ("call", [who]) => self.place(who).await,
            ("call", _) => say("call whom? type: call USER"),
            ("accept" | "answer" | "reject" | "decline", _) => {
                say(format!("{cmd}: no call is ringing"))
            }
            ("hangup" | "mute" | "unmute" | "stats", _) => {
                say(format!("{cmd}: you are not in a call"))
            }
            ("history", []) => self.history(20),
            ("history", [n]) => match n.parse() {
                Ok(n) => self.history(n),
                Err(_) => say(format!("history: {n:?} is not a number of calls")),
            },
            ("devices", []) => match crate::devices::list() {
                Ok(d) => say(crate::devices::table(&d)),
                Err(e) => say(e),
            },
            ("input", []) => say(format!("microphone: {}", self.options.call.input)),
            ("output", []) => say(format!("speaker: {}", self.options.call.output)),
            ("input" | "output", [name]) => self.choose(cmd, name),
            ("contacts", []) => self.contacts(),
            ("help", []) => say(help_text()),
            ("help", [c]) => say(help_for(c)),
            ("quit" | "exit", []) => return Flow::Quit,
            _ => match COMMANDS.iter().find(|(name, _, _)| *name == cmd) {
                Some((_, usage, _)) => say(format!("{cmd}: usage: {usage}")),
                None => say(format!("no command {cmd:?}: type help for the commands")),
            },
        }
        Flow::Go
    }

    fn history(&self, n: usize) {
        match History::open(&self.dir.join(crate::config::HISTORY_FILE)).and_then(|h| h.recent(n)) {
            Ok(calls) if calls.is_empty() => say("no calls yet"),
            Ok(calls) => {
                let mut text = header();
                for c in &calls {
                    text.push('\n');
                    text.push_str(&format_record(c));
                }
                say(text);
            }
            Err(e) => say(format!("history: {e}")),
        }
    }

    /// Tells the server whom this user shares presence with (config.toml's
    /// `share_presence`); nothing is sent when the list is empty.
    async fn share_presence(&mut self) {
        let contacts: Vec<UserId> = self
            .config
            .share_presence
            .iter()
            .filter_map(|n| match UserId::new(self.config.resolve(n)) {
                Ok(u) => Some(u),
                Err(e) => {
                    say(format!("share_presence: {n:?} is not a user name: {e}"));
                    None
                }
            })
            .collect();
        if contacts.is_empty() {
            return;
        }
        let m = Message::PresenceShare(cryptic_signal::wire::PresenceShare { contacts });
        if let Err(e) = self.side.sender.send(&m).await {
            tracing::debug!("presence list not sent: {e}");
        }
    }

    fn contacts(&self) {
        if !self.config.share_presence.is_empty() {
            let online: Vec<String> = self.present.iter().map(ToString::to_string).collect();
            say(format!(
                "online (of those you share presence with): {}",
                if online.is_empty() {
                    "nobody".to_string()
                } else {
                    online.join(", ")
                }
            ));
        }
        if self.config.contacts.is_empty() {
            say(format!(
                "no contacts: add them to {} as [contacts] alias = \"user\"",
                self.dir.join(crate::config::CONFIG_FILE).display()
            ));
            return;
        }
        let lines: Vec<String> = self
            .config
            .contacts
            .iter()
            .map(|(alias, user)| format!("{alias:<16} {user}"))
            .collect();
        say(lines.join("\n"));
    }

    /// `input NAME` / `output NAME` between calls: checked, used from the
    /// next call on, and saved in the profile's config.
    fn choose(&mut self, what: &str, name: &str) {
        match choose_device(
            &self.dir,
            &mut self.config,
            &mut self.options.call,
            what,
            name,
        ) {
            Ok((words, _)) => say(words),
            Err(e) => say(e),
        }
    }

    async fn place(&mut self, who: &str) {
        let name = self.config.resolve(who).to_string();
        let peer = match UserId::new(&name) {
            Ok(p) => p,
            Err(e) => {
                say(format!("{name:?} is not a user name: {e}"));
                return;
            }
        };
        if peer == self.side.me {
            say("you cannot call yourself");
            return;
        }
        if !self.online {
            say("not connected to the server (reconnecting): try again in a moment");
            return;
        }
        let mut presence = Vec::new();
        let started = ensure_session(&mut self.side, &peer, &mut presence).await;
        for p in presence {
            self.presence(p);
        }
        if let Err(e) = started {
            say(format!("cannot call {peer}: {e}"));
            return;
        }
        self.take_call(Some(peer), None).await;
    }

    /// Runs one call (placed, or the incoming `invite`) to its end.
    async fn take_call(&mut self, callee: Option<UserId>, invite: Option<Message>) {
        let mut options = self.options.call.clone();
        if let Err(e) = crate::devices::check(&options.input, &options.output) {
            say(format!("cannot take or place a call: {e}"));
            if let Some(Message::CallInvite(inv)) = &invite {
                say(format!(
                    "(the call from {} rings on, unanswered)",
                    inv.from_user
                ));
            }
            return;
        }
        if self.options.auto_answer && callee.is_none() {
            options.auto_accept = Some(Duration::ZERO);
        }
        if let SinkSpec::Wav(path) = &options.output {
            let fresh = fresh_recording(path);
            say(format!("recording to {}", fresh.display()));
            options.output = SinkSpec::Wav(fresh);
        }
        let calling = callee.clone();
        let (dir, config, call_options) = (&self.dir, &mut self.config, &mut self.options.call);
        let mut switch = |what: &str, name: &str| -> Option<Control> {
            match choose_device(dir, config, call_options, what, name) {
                Ok((_, control)) => Some(control),
                Err(e) => {
                    say(format!("{e} (the call goes on)"));
                    None
                }
            }
        };
        let report = in_call(
            &mut self.side,
            callee,
            &options,
            invite,
            &mut self.keys,
            &mut self.last_interrupt,
            &mut self.quitting,
            &mut switch,
        )
        .await;
        self.call_ended = Some(Instant::now());
        // A connection made again during the call is a new login: the
        // server wants the presence list again.
        self.share_presence().await;
        match report {
            Ok(r) => {
                let verified = r
                    .sas
                    .as_ref()
                    .and(r.peer.as_ref())
                    .map(|p| self.side.e2e.pinned_key(p).is_some_and(|k| k.verified));
                say(ended_line(&r));
                crate::history::record_report(&self.dir, &r, verified);
            }
            Err(e) => say(format!(
                "call {}failed: {e}",
                calling.map(|p| format!("to {p} ")).unwrap_or_default()
            )),
        }
    }
}

/// `input NAME` / `output NAME`: parsed and checked (the device opens),
/// kept in `options` for the next calls and saved in config.toml. Returns
/// what to say and the control that switches a call in progress; one line
/// saying why when the name is bad or the device does not open.
fn choose_device(
    dir: &Path,
    config: &mut Config,
    options: &mut CallOptions,
    what: &str,
    name: &str,
) -> Result<(String, Control), String> {
    let devices = crate::devices::list().unwrap_or_default();
    let chosen = if what == "input" {
        crate::devices::parse_input(name, &devices).and_then(|spec| {
            crate::devices::check(&spec, &SinkSpec::Null)?;
            options.input = spec.clone();
            config.input = Some(spec.to_string());
            Ok((format!("microphone: {spec}"), Control::Input(spec)))
        })
    } else {
        crate::devices::parse_output(name, &devices).and_then(|spec| {
            crate::devices::check(&cryptic_audio::SourceSpec::Silence, &spec)?;
            options.output = spec.clone();
            config.output = Some(spec.to_string());
            Ok((format!("speaker: {spec}"), Control::Output(spec)))
        })
    };
    let (words, control) = chosen.map_err(|e| format!("{what}: {e}"))?;
    let words = match config.save(dir) {
        Ok(()) => format!("{words} (saved in config.toml)"),
        Err(e) => format!("{words} (not saved: {e})"),
    };
    Ok((words, control))
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

/// The server's words without anything a terminal would obey.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The first name `stem-N.wav` (or the path itself) not taken yet: one
/// recording per call, none overwritten.
pub fn fresh_recording(path: &Path) -> PathBuf {
    if !path.exists() {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "call".into());
    let ext = path
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wav".into());
    (2u32..)
        .map(|n| path.with_file_name(format!("{stem}-{n}.{ext}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| path.to_path_buf())
}

/// How a call ended, in one line both `call`/`listen` and the shell print:
/// the outcome, why in plain words, the path and the SAS.
pub fn ended_line(r: &CallReport) -> String {
    let mut reason = r.reason.clone();
    if r.outcome == Outcome::Missed && r.role == cryptic_signal::call::Role::Callee {
        reason.push_str(&format!(
            " at {}",
            crate::history::local_clock(r.started_unix)
        ));
    }
    format!(
        "call ended: {} ({reason}), path {}, SAS {}",
        r.outcome.as_str(),
        r.path.as_deref().unwrap_or("-"),
        r.sas.as_deref().unwrap_or("-")
    )
}

fn help_text() -> String {
    let mut text = String::from("commands (help COMMAND for one in full):");
    for (_, usage, _) in COMMANDS {
        text.push_str("\n  ");
        text.push_str(usage);
    }
    text
}

fn help_for(cmd: &str) -> String {
    let cmd = match cmd {
        "answer" => "accept",
        "decline" => "reject",
        "exit" => "quit",
        c => c,
    };
    match COMMANDS.iter().find(|(name, _, _)| *name == cmd) {
        Some((_, usage, what)) => format!("{usage}: {what}"),
        None => format!("no command {cmd:?}: type help for the commands"),
    }
}

/// Starts an end-to-end session with `peer` if there is none, with the
/// server's refusals in plain words.
/// Presence news that arrives meanwhile is kept in `presence`.
async fn ensure_session(
    side: &mut CallSide,
    peer: &UserId,
    presence: &mut Vec<cryptic_signal::wire::Presence>,
) -> Result<(), String> {
    if side.e2e.has_session(peer) {
        return Ok(());
    }
    side.sender
        .send(&Message::KeysFetch(KeysFetch { user: peer.clone() }))
        .await
        .map_err(|e| e.to_string())?;
    let bundle = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match side.receiver.recv().await {
                Ok(Incoming::Message(Message::KeysBundle(b))) if &b.user == peer => return Ok(b),
                Ok(Incoming::Message(Message::Presence(p))) => presence.push(p),
                Ok(Incoming::Message(Message::Error(e))) => {
                    return Err(match e.code {
                        ErrorCode::NoKeys => format!("no such user, or {peer} never signed in"),
                        ErrorCode::RateLimited => {
                            "the server asks you to slow down: try again in a minute".into()
                        }
                        code => format!("the server refused ({code:?}): {}", printable(&e.message)),
                    })
                }
                Ok(_) => continue,
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "the server did not answer the key request".to_string())??;
    side.e2e.start_session(&bundle).map_err(|e| e.to_string())
}

/// Runs one call while typed lines become its controls (`input NAME` and
/// `output NAME` go through `switch` first: checked and saved).
#[allow(clippy::too_many_arguments)]
async fn in_call(
    side: &mut CallSide,
    callee: Option<UserId>,
    options: &CallOptions,
    initial: Option<Message>,
    keys: &mut mpsc::UnboundedReceiver<Key>,
    last_interrupt: &mut Option<Instant>,
    quitting: &mut bool,
    switch: &mut dyn FnMut(&str, &str) -> Option<Control>,
) -> Result<CallReport, String> {
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
    let placing = callee.clone();
    let incoming = initial.is_some() && options.auto_accept.is_none();
    if let Some(peer) = &placing {
        crate::screen::progress(&format!("calling {peer}..."));
    }
    crate::screen::mark();
    // "ringing" once the server routed the invite (it refuses at once for
    // an offline or busy callee), "type accept" once the ring is shown.
    let mut hint_at =
        Some(tokio::time::Instant::now() + Duration::from_millis(if incoming { 50 } else { 800 }));
    let hint_until = Instant::now() + Duration::from_secs(5);
    let call = run_call_with(side, callee, options, initial, &mut ctl_rx);
    tokio::pin!(call);
    loop {
        let hint = hint_at.unwrap_or_else(far_future);
        tokio::select! {
            report = &mut call => return report.map_err(|e| e.to_string()),
            key = keys.recv() => {
                let control = match key.unwrap_or(Key::Eof) {
                    Key::Line(line) => match device_command(&line) {
                        Some((what, name)) => match switch(what, name) {
                            Some(c) => c,
                            None => continue,
                        },
                        None => match in_call_command(&line) {
                            Some(c) => c,
                            None => continue,
                        },
                    },
                    Key::Interrupt => {
                        *last_interrupt = Some(Instant::now());
                        say("hanging up (Ctrl-C again to quit)");
                        Control::Hangup
                    }
                    _ => {
                        *quitting = true;
                        Control::Hangup
                    }
                };
                let _ = ctl_tx.send(control);
            }
            _ = tokio::time::sleep_until(hint) => {
                if let Some(peer) = &placing {
                    hint_at = None;
                    if !crate::screen::touched() {
                        crate::screen::progress(&format!("calling {peer}... ringing"));
                    }
                } else if crate::screen::touched() {
                    hint_at = None;
                    say("type accept to answer, reject to decline");
                } else if Instant::now() > hint_until {
                    hint_at = None;
                } else {
                    hint_at = Some(tokio::time::Instant::now() + Duration::from_millis(50));
                }
            }
        }
    }
}

/// `input NAME` or `output NAME` typed during a call.
fn device_command(line: &str) -> Option<(&'static str, &str)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["input", name] => Some(("input", name)),
        ["output", name] => Some(("output", name)),
        _ => None,
    }
}

/// A line typed during a call: its control, or `None` (said why).
fn in_call_command(line: &str) -> Option<Control> {
    let words: Vec<&str> = line.split_whitespace().collect();
    Some(match words.as_slice() {
        [] => return None,
        ["accept" | "answer"] => Control::Accept,
        ["reject" | "decline"] => Control::Reject,
        ["hangup" | "bye"] => Control::Hangup,
        ["mute"] => Control::Mute(true),
        ["unmute"] => Control::Mute(false),
        ["stats"] => Control::Stats,
        ["help"] => {
            say(
                "during a call: accept | reject | hangup | mute | unmute | stats | input NAME | output NAME (Ctrl-C hangs up)",
            );
            return None;
        }
        ["help", c] => {
            say(help_for(c));
            return None;
        }
        ["quit" | "exit"] => {
            say("hang up first (hangup or Ctrl-C), then quit");
            return None;
        }
        [cmd, ..] if COMMANDS.iter().any(|(n, _, _)| n == cmd) => {
            say(format!("{cmd}: not during a call (hang up first)"));
            return None;
        }
        [cmd, ..] => {
            say(format!("no command {cmd:?}: during a call: accept | reject | hangup | mute | unmute | stats | input NAME | output NAME"));
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_help_and_unknown_ones_are_named() {
        for (name, usage, what) in COMMANDS {
            assert!(help_for(name).starts_with(usage), "{name}");
            assert!(!what.is_empty());
        }
        assert!(help_for("answer").starts_with("accept"));
        assert!(help_for("fly").contains("no command \"fly\""));
        assert!(help_text().lines().count() > COMMANDS.len());
    }

    #[test]
    fn in_call_lines_map_to_controls() {
        assert_eq!(in_call_command("accept"), Some(Control::Accept));
        assert_eq!(in_call_command(" mute "), Some(Control::Mute(true)));
        assert_eq!(in_call_command("devices"), None);
        assert_eq!(in_call_command(""), None);
    }

    #[test]
    fn a_recording_never_replaces_the_previous_one() {
        let dir = std::env::temp_dir().join(format!("cc-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join("call.wav");
        assert_eq!(fresh_recording(&first), first);
        std::fs::write(&first, b"x").unwrap();
        assert_eq!(fresh_recording(&first), dir.join("call-2.wav"));
        std::fs::write(dir.join("call-2.wav"), b"x").unwrap();
        assert_eq!(fresh_recording(&first), dir.join("call-3.wav"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn control_characters_from_the_server_are_not_printed() {
        assert_eq!(printable("ok\x1b[2Jno\n"), "ok[2Jno");
    }
}
