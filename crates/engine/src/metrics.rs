//! The verification metrics, resolved once when the engine starts.
//!
//! The `metrics` macros look the metric up in the recorder's registry on every call
//! (hashing its name and labels); on the verification path that was a measurable part
//! of the cost. Handles resolved up front make each update an atomic add. A recorder
//! installed after [`Engine::start`](crate::Engine::start) does not see these.

use keyward_core::verify::VerifyCode;
use metrics::{Counter, Histogram};

pub(crate) struct VerifyMetrics {
    by_code: Vec<(VerifyCode, Counter)>,
    errors: Counter,
    pub(crate) duration: Histogram,
    pub(crate) cache_hits: Counter,
    pub(crate) negative_hits: Counter,
    pub(crate) cache_misses: Counter,
}

impl VerifyMetrics {
    pub(crate) fn new() -> Self {
        Self {
            by_code: VerifyCode::all()
                .map(|code| {
                    let counter =
                        metrics::counter!("keyward_verify_total", "code" => code.as_str());
                    (code, counter)
                })
                .collect(),
            errors: metrics::counter!("keyward_verify_total", "code" => "ERROR"),
            duration: metrics::histogram!("keyward_verify_duration_seconds"),
            cache_hits: metrics::counter!("keyward_cache_hits_total"),
            negative_hits: metrics::counter!("keyward_cache_negative_hits_total"),
            cache_misses: metrics::counter!("keyward_cache_misses_total"),
        }
    }

    /// Counts one verification by its outcome (`None`: it failed with an error; every
    /// code has a counter of its own).
    pub(crate) fn count(&self, code: Option<VerifyCode>) {
        let counter = code.and_then(|code| {
            self.by_code
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, counter)| counter)
        });
        counter.unwrap_or(&self.errors).increment(1);
    }
}
