//! `ProviderProber`: validates credentials and discovers models over HTTP (awc), with timeouts and
//! without following redirects. Saves nothing.

use actix::prelude::*;
use to11_shared::catalog::CatalogEntry;
use to11_shared::model::{CredentialSecret, ModelInfo};

use crate::providers::{discover, ProbeError, ProbeTimeouts};

pub struct ProviderProber {
    client: awc::Client,
    timeouts: std::rc::Rc<ProbeTimeouts>,
}

impl ProviderProber {
    pub fn new(timeouts: ProbeTimeouts) -> Self {
        let client = awc::Client::builder()
            .disable_redirects()
            .no_default_headers()
            .add_default_header(("user-agent", concat!("to11/", env!("CARGO_PKG_VERSION"))))
            .connector(awc::Connector::new().timeout(timeouts.connect))
            .finish();
        Self {
            client,
            timeouts: std::rc::Rc::new(timeouts),
        }
    }
}

impl Actor for ProviderProber {
    type Context = Context<Self>;
}

/// Validate a credential and list the provider's models.
#[derive(Message)]
#[rtype(result = "Result<Vec<ModelInfo>, ProbeError>")]
pub struct DiscoverModels {
    pub entry: CatalogEntry,
    pub base_url: String,
    pub secret: CredentialSecret,
    /// Models the user named (for providers without a listing).
    pub named: Vec<String>,
}

impl Handler<DiscoverModels> for ProviderProber {
    type Result = ResponseFuture<Result<Vec<ModelInfo>, ProbeError>>;

    fn handle(&mut self, msg: DiscoverModels, _: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        let timeouts = self.timeouts.clone();
        Box::pin(async move {
            discover(
                &client,
                &msg.entry,
                &msg.base_url,
                &msg.secret,
                &msg.named,
                &timeouts,
            )
            .await
        })
    }
}
