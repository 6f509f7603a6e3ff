//! Logs and metrics.
//!
//! Logs go to stderr as text or JSON lines, filtered by `KEYWARD_LOG`. Nothing logged
//! ever contains a key: handlers log ids, and the engine never sees more than it
//! must. Metrics use the `metrics` facade; the Prometheus recorder is installed once
//! per process and rendered by `/metrics`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{MakeExt, MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

use crate::flags::LogFormat;

/// Installs the log subscriber. Fails if the filter does not parse.
pub fn init_logging(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("KEYWARD_LOG: invalid filter {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.fmt_fields(text_fields()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("logging already initialised: {e}"))
}

/// Fields of text logs as `name=value`, with a value quoted and escaped (as a Rust
/// string literal) when it holds whitespace, control characters or a quote. Values can
/// come from clients (a JWT's subject, an error naming a field): unquoted,
/// `sub = "mallory key_id=0000"` would forge a `key_id` field, and a line break a
/// whole log line. JSON logs escape values by themselves.
pub fn text_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    TextFields.delimited(" ")
}

#[derive(Clone, Copy)]
struct TextFields;

impl<'a> MakeVisitor<Writer<'a>> for TextFields {
    type Visitor = TextVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> TextVisitor<'a> {
        TextVisitor {
            writer,
            result: Ok(()),
        }
    }
}

struct TextVisitor<'a> {
    writer: Writer<'a>,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    fn field(&mut self, field: &Field, text: &str) {
        if self.result.is_err() {
            return;
        }
        self.result = if field.name() == "message" {
            // keyward's own words; client values go in fields.
            self.writer.write_str(text)
        } else if text.is_empty()
            || text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"')
        {
            write!(self.writer, "{}={text:?}", field.name())
        } else {
            write!(self.writer, "{}={text}", field.name())
        };
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for TextVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for TextVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// Latency buckets in seconds: verification is microseconds on a cache hit and
/// milliseconds on a database read; HTTP adds the transport.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process's Prometheus recorder, installed on first use.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding application);
            // then /metrics shows what this one records, which is nothing, rather than
            // failing the service.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::text_fields;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(event: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(text_fields())
            .finish();
        tracing::subscriber::with_default(subscriber, event);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn client_values_cannot_forge_fields_or_lines_in_text_logs() {
        let line = logged(|| {
            let sub = "mallory key_id=0000 user_id=alice";
            tracing::info!(key_id = "k1", action = "suspend", user_id = %sub, "key created");
        });
        assert!(
            line.contains(
                r#"key created key_id=k1 action=suspend user_id="mallory key_id=0000 user_id=alice""#
            ),
            "{line}"
        );
        let line = logged(|| {
            let sub = "eve\nINFO forged line";
            tracing::info!(user_id = %sub, "user deleted");
        });
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            line.contains(r#"user_id="eve\nINFO forged line""#),
            "{line}"
        );
    }
}
