//! Log lines in nats-server's exact format.
//!
//! Tools that start a server wait for it by reading its log, so each line looks like
//! nats-server's (logger/log.go): `[PID] 2026/11/23 10:41:00.123456 [INF] message`, the
//! timestamp in local time (UTC with `--logtime_utc`) and dropped with `-T=false`. Levels map
//! `error!`→`[ERR]`, `warn!`→`[WRN]`, `info!`→`[INF]`, `debug!`→`[DBG]`, `trace!`→`[TRC]`;
//! [`fatal`] writes `[FTL]`. As in nats-server, `-V` enables trace lines without debug lines.
//!
//! Logging is off the message path, so one mutex around the output is enough.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::Registry;

use tachyon_config::Options;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Append to this file instead of writing to stderr (`-l`).
    pub file: Option<PathBuf>,
    pub debug: bool,
    pub trace: bool,
    /// Timestamp each line (`-T`, on by default in nats-server).
    pub logtime: bool,
    /// Timestamps in UTC instead of local time (`--logtime_utc`).
    pub utc: bool,
}

impl From<&Options> for LogOptions {
    fn from(o: &Options) -> Self {
        LogOptions {
            file: o.log_file.clone(),
            debug: o.debug,
            trace: o.trace,
            logtime: o.logtime,
            utc: o.logtime_utc,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("error opening file: open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("logging is already initialized")]
    AlreadyInitialized,
}

/// Keeps the logger alive; dropping it flushes the output.
#[must_use = "dropping the guard flushes and is meant to happen at exit"]
pub struct LogGuard {
    sink: Arc<Sink>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.sink.flush();
    }
}

/// Installs the nats-server-format subscriber as the global default.
pub fn init(opts: &LogOptions) -> Result<LogGuard, LoggingError> {
    let sink = Arc::new(Sink::new(opts)?);
    GLOBAL
        .set(Arc::clone(&sink))
        .map_err(|_| LoggingError::AlreadyInitialized)?;
    let subscriber = Registry::default().with(NatsLayer {
        sink: Arc::clone(&sink),
    });
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| LoggingError::AlreadyInitialized)?;
    Ok(LogGuard { sink })
}

/// Writes a `[FTL]` line; before [`init`] (a bad command line, say) it goes to stderr in the
/// default format. The caller decides whether to exit (nats-server exits 1).
pub fn fatal(msg: &str) {
    match GLOBAL.get() {
        Some(sink) => sink.write_line(Label::Fatal, msg),
        None => Sink::stderr_default().write_line(Label::Fatal, msg),
    }
}

/// Closes and reopens the log file so a rotated (renamed) file is let go. Returns `Ok(false)`
/// when logging goes to stderr (nats-server then logs "File log re-open ignored, not a file
/// logger"); the caller logs "File log re-opened" on `Ok(true)`, as nats-server does.
pub fn reopen() -> Result<bool, LoggingError> {
    match GLOBAL.get() {
        Some(sink) => sink.reopen(),
        None => Ok(false),
    }
}

/// Applies reloaded logging options: level, timestamps and output file. A file that cannot
/// be opened leaves the output as it was.
pub fn reconfigure(opts: &LogOptions) -> Result<(), LoggingError> {
    if let Some(sink) = GLOBAL.get() {
        sink.reconfigure(opts)?;
        // Callsites cached their interest under the old levels.
        tracing::callsite::rebuild_interest_cache();
    }
    Ok(())
}

static GLOBAL: OnceLock<Arc<Sink>> = OnceLock::new();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Label {
    fn from_level(level: &Level) -> Label {
        match *level {
            Level::ERROR => Label::Error,
            Level::WARN => Label::Warn,
            Level::INFO => Label::Info,
            Level::DEBUG => Label::Debug,
            Level::TRACE => Label::Trace,
        }
    }

    fn plain(self) -> &'static str {
        match self {
            Label::Fatal => "[FTL] ",
            Label::Error => "[ERR] ",
            Label::Warn => "[WRN] ",
            Label::Info => "[INF] ",
            Label::Debug => "[DBG] ",
            Label::Trace => "[TRC] ",
        }
    }

    /// nats-server colours labels only on a terminal.
    fn colored(self) -> &'static str {
        match self {
            Label::Fatal => "[\x1b[31mFTL\x1b[0m] ",
            Label::Error => "[\x1b[31mERR\x1b[0m] ",
            Label::Warn => "[\x1b[0;93mWRN\x1b[0m] ",
            Label::Info => "[\x1b[32mINF\x1b[0m] ",
            Label::Debug => "[\x1b[36mDBG\x1b[0m] ",
            Label::Trace => "[\x1b[33mTRC\x1b[0m] ",
        }
    }
}

enum Output {
    Stderr,
    File { path: PathBuf, file: File },
}

struct Sink {
    out: Mutex<Output>,
    pid_prefix: String,
    // Atomics so a config reload can change them; read per log line, never per message.
    logtime: AtomicBool,
    utc: AtomicBool,
    colors: bool,
    debug: AtomicBool,
    trace: AtomicBool,
}

impl Sink {
    fn new(opts: &LogOptions) -> Result<Sink, LoggingError> {
        let (out, colors) = match &opts.file {
            Some(path) => (
                Output::File {
                    path: path.clone(),
                    file: open_append(path)?,
                },
                false,
            ),
            None => (Output::Stderr, stderr_is_terminal()),
        };
        Ok(Sink {
            out: Mutex::new(out),
            pid_prefix: format!("[{}] ", std::process::id()),
            logtime: AtomicBool::new(opts.logtime),
            utc: AtomicBool::new(opts.utc),
            colors,
            debug: AtomicBool::new(opts.debug),
            trace: AtomicBool::new(opts.trace),
        })
    }

    fn stderr_default() -> Sink {
        Sink {
            out: Mutex::new(Output::Stderr),
            pid_prefix: format!("[{}] ", std::process::id()),
            logtime: AtomicBool::new(true),
            utc: AtomicBool::new(false),
            colors: stderr_is_terminal(),
            debug: AtomicBool::new(false),
            trace: AtomicBool::new(false),
        }
    }

    fn enabled(&self, level: &Level) -> bool {
        match *level {
            Level::TRACE => self.trace.load(Ordering::Relaxed),
            Level::DEBUG => self.debug.load(Ordering::Relaxed),
            _ => true,
        }
    }

    fn format_line(&self, now: SystemTime, label: Label, msg: &str) -> String {
        let mut line = String::with_capacity(self.pid_prefix.len() + 34 + msg.len());
        line.push_str(&self.pid_prefix);
        if self.logtime.load(Ordering::Relaxed) {
            push_timestamp(&mut line, now, self.utc.load(Ordering::Relaxed));
        }
        line.push_str(if self.colors {
            label.colored()
        } else {
            label.plain()
        });
        line.push_str(msg);
        // Go's log package adds the newline only when the message lacks one.
        if !line.ends_with('\n') {
            line.push('\n');
        }
        line
    }

    fn write_line(&self, label: Label, msg: &str) {
        let line = self.format_line(SystemTime::now(), label, msg);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A failed log write has nowhere better to be reported.
        let _ = match &mut *out {
            Output::Stderr => io::stderr().lock().write_all(line.as_bytes()),
            Output::File { file, .. } => file.write_all(line.as_bytes()),
        };
    }

    fn reopen(&self) -> Result<bool, LoggingError> {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *out {
            Output::Stderr => Ok(false),
            Output::File { path, file } => {
                *file = open_append(path)?;
                Ok(true)
            }
        }
    }

    fn reconfigure(&self, opts: &LogOptions) -> Result<(), LoggingError> {
        {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let current = match &*out {
                Output::Stderr => None,
                Output::File { path, .. } => Some(path),
            };
            if current != opts.file.as_ref() {
                *out = match &opts.file {
                    Some(path) => Output::File {
                        path: path.clone(),
                        file: open_append(path)?,
                    },
                    None => Output::Stderr,
                };
            }
        }
        self.logtime.store(opts.logtime, Ordering::Relaxed);
        self.utc.store(opts.utc, Ordering::Relaxed);
        self.debug.store(opts.debug, Ordering::Relaxed);
        self.trace.store(opts.trace, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = match &mut *out {
            Output::Stderr => io::stderr().flush(),
            Output::File { file, .. } => file.flush(),
        };
    }
}

fn open_append(path: &Path) -> Result<File, LoggingError> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640) // nats-server's log file permissions
        .open(path)
        .map_err(|source| LoggingError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    io::stderr().is_terminal()
}

/// Appends `YYYY/MM/DD HH:MM:SS.uuuuuu ` (Go's LstdFlags|Lmicroseconds).
fn push_timestamp(line: &mut String, now: SystemTime, utc: bool) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = libc::time_t::try_from(since.as_secs()).unwrap_or(libc::time_t::MAX);
    // SAFETY: `tm` is plain data for which all-zero bytes are valid (a null tm_zone included);
    // both pointers refer to live locals for the duration of the call, and the _r variants
    // write only into the caller's struct, so concurrent calls do not race.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let ok = if utc {
            !libc::gmtime_r(&secs, &mut tm).is_null()
        } else {
            !libc::localtime_r(&secs, &mut tm).is_null()
        };
        ok.then_some(tm)
    };
    let Some(tm) = tm else {
        return;
    };
    let _ = write!(
        line,
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{:06} ",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        since.subsec_micros()
    );
}

struct NatsLayer {
    sink: Arc<Sink>,
}

impl<S: Subscriber> Layer<S> for NatsLayer {
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.sink.enabled(metadata.level())
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        Some(if self.sink.trace.load(Ordering::Relaxed) {
            LevelFilter::TRACE
        } else if self.sink.debug.load(Ordering::Relaxed) {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        })
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        self.sink.write_line(
            Label::from_level(event.metadata().level()),
            &visitor.into_text(),
        );
    }
}

/// The message, then any structured fields as ` key=value`.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn into_text(mut self) -> String {
        self.message.push_str(&self.fields);
        self.message
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "tachyon-logging-{}-{}-{name}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ))
    }

    fn file_opts(path: &Path) -> LogOptions {
        LogOptions {
            file: Some(path.to_path_buf()),
            debug: false,
            trace: false,
            logtime: true,
            utc: true,
        }
    }

    #[test]
    fn line_layout_matches_nats_server() {
        let sink = Sink::new(&LogOptions {
            logtime: true,
            utc: true,
            ..Default::default()
        })
        .map(|mut s| {
            s.colors = false;
            s
        })
        .unwrap_or_else(|e| panic!("{e}"));
        // 2026-11-23 10:41:00.123456 UTC
        let t = UNIX_EPOCH + Duration::new(1_795_430_460, 123_456_789);
        let line = sink.format_line(
            t,
            Label::Info,
            "Listening for client connections on 0.0.0.0:4222",
        );
        assert_eq!(
            line,
            format!(
                "[{}] 2026/11/23 10:41:00.123456 [INF] Listening for client connections on 0.0.0.0:4222\n",
                std::process::id()
            )
        );
    }

    #[test]
    fn logtime_false_drops_timestamp() {
        let mut sink = Sink::stderr_default();
        sink.logtime = AtomicBool::new(false);
        sink.colors = false;
        let line = sink.format_line(SystemTime::now(), Label::Fatal, "boom");
        assert_eq!(line, format!("[{}] [FTL] boom\n", std::process::id()));
    }

    #[test]
    fn reconfigure_changes_levels_and_file() {
        let first = temp_path("reconf-a.log");
        let second = temp_path("reconf-b.log");
        let sink = Sink::new(&file_opts(&first)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!sink.enabled(&Level::DEBUG));
        sink.reconfigure(&LogOptions {
            debug: true,
            ..file_opts(&second)
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(sink.enabled(&Level::DEBUG) && !sink.enabled(&Level::TRACE));
        sink.write_line(Label::Info, "after");
        let text = std::fs::read_to_string(&second).unwrap_or_default();
        assert!(text.contains("[INF] after"), "{text:?}");
        let bad = LogOptions {
            file: Some(PathBuf::from("/nonexistent-dir/x.log")),
            ..Default::default()
        };
        assert!(sink.reconfigure(&bad).is_err());
        sink.write_line(Label::Info, "still");
        let text = std::fs::read_to_string(&second).unwrap_or_default();
        assert!(text.contains("[INF] still"), "{text:?}");
        let _ = std::fs::remove_file(&first);
        let _ = std::fs::remove_file(&second);
    }

    #[test]
    fn local_timestamp_has_go_shape() {
        let mut line = String::new();
        push_timestamp(&mut line, SystemTime::now(), false);
        let b = line.as_bytes();
        assert_eq!(b.len(), 27, "{line:?}");
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19], b[26]),
            (b'/', b'/', b' ', b':', b':', b'.', b' ')
        );
    }

    #[test]
    fn colored_labels_on_terminal() {
        let mut sink = Sink::stderr_default();
        sink.logtime = AtomicBool::new(false);
        sink.colors = true;
        let line = sink.format_line(SystemTime::now(), Label::Warn, "w");
        assert!(line.ends_with("[\x1b[0;93mWRN\x1b[0m] w\n"), "{line:?}");
    }

    #[test]
    fn levels_map_to_labels_and_filter_like_nats_server() {
        let path = temp_path("levels.log");
        let sink = Arc::new(
            Sink::new(&LogOptions {
                trace: true,
                ..file_opts(&path)
            })
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let subscriber = Registry::default().with(NatsLayer {
            sink: Arc::clone(&sink),
        });
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("e {}", 1);
            tracing::warn!("w");
            tracing::info!(port = 4222, "i");
            // -V without -D: trace lines appear, debug lines do not (nats-server behaviour).
            tracing::debug!("d");
            tracing::trace!("t");
        });
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        let labels: Vec<&str> = text
            .lines()
            .map(|l| l.split_once("] ").map_or("", |x| x.1))
            .map(|rest| rest.get(27..).unwrap_or(""))
            .collect();
        assert_eq!(
            labels,
            ["[ERR] e 1", "[WRN] w", "[INF] i port=4222", "[TRC] t"],
            "{text}"
        );
    }

    #[test]
    fn info_level_hides_debug_and_trace() {
        let path = temp_path("info.log");
        let sink = Arc::new(Sink::new(&file_opts(&path)).unwrap_or_else(|e| panic!("{e}")));
        let subscriber = Registry::default().with(NatsLayer {
            sink: Arc::clone(&sink),
        });
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("d");
            tracing::trace!("t");
            tracing::info!("Server is ready");
        });
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with("[INF] Server is ready\n"), "{text}");
    }

    #[test]
    fn file_is_appended_and_reopened_after_rotation() {
        let path = temp_path("rotate.log");
        let rotated = path.with_extension("old");
        std::fs::write(&path, "existing\n").unwrap_or_else(|e| panic!("{e}"));
        let sink = Sink::new(&file_opts(&path)).unwrap_or_else(|e| panic!("{e}"));
        sink.write_line(Label::Info, "first");
        std::fs::rename(&path, &rotated).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(sink.reopen(), Ok(true)));
        sink.write_line(Label::Info, "second");
        let old = std::fs::read_to_string(&rotated).unwrap_or_default();
        let new = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&rotated);
        assert!(old.starts_with("existing\n[") && old.ends_with("[INF] first\n"));
        assert_eq!(new.lines().count(), 1);
        assert!(new.ends_with("[INF] second\n"));
        assert!(!Sink::stderr_default().reopen().unwrap_or(true));
    }

    #[test]
    fn unopenable_file_is_an_error() {
        let err = Sink::new(&file_opts(Path::new("/nonexistent-dir/x/y.log")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("error opening file: "), "{err}");
    }

    #[test]
    fn global_init_fatal_and_reopen() {
        let path = temp_path("global.log");
        let guard = init(&file_opts(&path)).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            init(&file_opts(&path)),
            Err(LoggingError::AlreadyInitialized)
        ));
        fatal("bad config");
        assert!(matches!(reopen(), Ok(true)));
        drop(guard);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        assert!(text.ends_with("[FTL] bad config\n"), "{text}");
    }

    #[test]
    fn options_convert() {
        let o = Options {
            debug: true,
            logtime: false,
            log_file: Some(PathBuf::from("/x")),
            ..Options::default()
        };
        let l = LogOptions::from(&o);
        assert!(l.debug && !l.trace && !l.logtime && !l.utc);
        assert_eq!(l.file, Some(PathBuf::from("/x")));
    }
}
