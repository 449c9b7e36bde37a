//! `ProviderProber`: validates credentials and discovers models over HTTP (awc), with timeouts,
//! without following redirects, and through the SSRF-guarded resolver. Saves nothing.

use actix::prelude::*;
use to11_io::outbound as net;
use to11_shared::model::ModelInfo;

use crate::providers::{discover, ProbeError, ProbeTimeouts, Target};

pub struct ProviderProber {
    client: awc::Client,
    timeouts: std::rc::Rc<ProbeTimeouts>,
    token_url: std::rc::Rc<str>,
    /// Outcomes by catalog id (`to11_cp_probes_total`).
    outcomes: Option<prometheus::IntCounterVec>,
}

impl ProviderProber {
    pub fn new(timeouts: ProbeTimeouts, allow_private: bool, token_url: &str) -> Self {
        let client = net::client(&net::ClientOptions {
            connect_timeout: timeouts.connect,
            timeout: timeouts.total,
            max_connections: 64,
            allow_private,
        });
        Self {
            client,
            timeouts: std::rc::Rc::new(timeouts),
            token_url: token_url.into(),
            outcomes: None,
        }
    }

    /// Counts each probe's outcome in `outcomes` (labels: provider, outcome).
    pub fn with_outcomes(mut self, outcomes: prometheus::IntCounterVec) -> Self {
        self.outcomes = Some(outcomes);
        self
    }
}

/// A probe's outcome as a label value.
fn outcome(r: &Result<Vec<ModelInfo>, ProbeError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(ProbeError::InvalidCredential(_)) => "invalid_credential",
        Err(ProbeError::Permission(_)) => "permission",
        Err(ProbeError::Unreachable(_)) => "unreachable",
        Err(ProbeError::BadBaseUrl(_)) => "bad_base_url",
        Err(ProbeError::RateLimited(_)) => "rate_limited",
        Err(ProbeError::Timeout(_)) => "timeout",
        Err(ProbeError::Unexpected(_)) => "unexpected",
        Err(ProbeError::UnknownModel(_)) => "unknown_model",
    }
}

impl Actor for ProviderProber {
    type Context = Context<Self>;
}

/// Validate a credential and list the provider's models.
#[derive(Message)]
#[rtype(result = "Result<Vec<ModelInfo>, ProbeError>")]
pub struct DiscoverModels(pub Target);

impl Handler<DiscoverModels> for ProviderProber {
    type Result = ResponseFuture<Result<Vec<ModelInfo>, ProbeError>>;

    fn handle(&mut self, msg: DiscoverModels, _: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        let timeouts = self.timeouts.clone();
        let token_url = self.token_url.clone();
        let outcomes = self.outcomes.clone();
        Box::pin(async move {
            let r = discover(&client, &msg.0, &timeouts, &token_url).await;
            if let Some(c) = outcomes.as_ref().and_then(|o| {
                o.get_metric_with_label_values(&[msg.0.entry.id, outcome(&r)])
                    .ok()
            }) {
                c.inc();
            }
            r
        })
    }
}
