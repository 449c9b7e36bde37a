//! Label values, bounded: what may become a label and how many distinct model names may.
//!
//! The gateway only ever labels a request with the model name it resolved (an exposed model, a
//! route or a function of the caller's project; a name nothing resolves is answered 404 and
//! labelled `none`), and at most `cap` distinct names across all projects: later ones are folded
//! into `other`, so a tenant creating routes in a loop cannot grow the exposition without bound.

use std::collections::HashSet;
use std::sync::Mutex;

/// The label value of a model past the cap.
pub const OTHER: &str = "other";
/// The label value of what a request never got to (no model resolved, no provider tried).
pub const NONE: &str = "none";
/// Default cap on distinct model label values.
pub const MAX_MODELS: usize = 1_000;

/// The model names given out as label values so far, at most `cap`.
pub struct ModelLabels {
    cap: usize,
    seen: Mutex<HashSet<Box<str>>>,
}

impl ModelLabels {
    pub fn new(cap: usize) -> Self {
        ModelLabels {
            cap,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// `model` itself while fewer than `cap` names were given out (or it is one of them), else
    /// `other`. Called once per new series, never per request.
    pub fn label<'m>(&self, model: &'m str) -> &'m str {
        if model == NONE {
            return model;
        }
        let Ok(mut seen) = self.seen.lock() else {
            return OTHER;
        };
        if seen.contains(model) {
            return model;
        }
        if seen.len() >= self.cap {
            return OTHER;
        }
        seen.insert(model.into());
        model
    }
}

/// A status code's class (`2xx`, …); anything outside 100–599 is `other`.
pub fn status_class(status: u16) -> (usize, &'static str) {
    match status {
        100..=199 => (0, "1xx"),
        200..=299 => (1, "2xx"),
        300..=399 => (2, "3xx"),
        400..=499 => (3, "4xx"),
        500..=599 => (4, "5xx"),
        _ => (5, "other"),
    }
}

/// Number of `status_class` values.
pub const STATUS_CLASSES: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_stop_at_the_cap_and_keep_the_names_given_out() {
        let labels = ModelLabels::new(MAX_MODELS);
        for i in 0..MAX_MODELS {
            let m = format!("model-{i}");
            assert_eq!(labels.label(&m), m);
        }
        assert_eq!(labels.label("one-too-many"), OTHER);
        assert_eq!(labels.label("another"), OTHER);
        assert_eq!(
            labels.label("model-0"),
            "model-0",
            "given out before the cap"
        );
        assert_eq!(labels.label("model-999"), "model-999");
        assert_eq!(labels.label(NONE), NONE, "`none` never takes a place");
    }

    #[test]
    fn a_cap_of_zero_folds_every_model() {
        let labels = ModelLabels::new(0);
        assert_eq!(labels.label("gpt-4o"), OTHER);
        assert_eq!(labels.label(NONE), NONE);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), (1, "2xx"));
        assert_eq!(status_class(404), (3, "4xx"));
        assert_eq!(status_class(503), (4, "5xx"));
        assert_eq!(status_class(0), (5, "other"));
        assert_eq!(status_class(600).1, "other");
    }
}
