//! The replica's HTTP service, in front of actix-web's `App`: a POST to one of the APIs' paths
//! goes straight to `proxy::forward`; everything else (health, metrics, model lists, CORS
//! preflights, 404s and 405s) to the `App`, as before.
//!
//! The `App` costs a proxied request ~3,500 instructions (callgrind): a pooled `HttpRequest`,
//! the router's path matching and method guards, four extractors, the CORS middleware's futures
//! and the response's conversions, some 6 % of what the whole hop costs. The decision it makes
//! for an API call is one method and one path comparison (`is_api_call`).

use std::future::Future;
use std::pin::Pin;

use actix_http::Request;
use actix_service::{Service, ServiceFactory};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{AppConfig, Response, ServiceResponse};
use actix_web::http::Method;
use actix_web::{web, Error};

use crate::{Ctx, Worker};

type Answer = Pin<Box<dyn Future<Output = Result<Response<BoxBody>, Error>>>>;

/// The factory of one worker's `FrontService`: the `App`'s factory, and the state the gateway's
/// handler takes (the same the `App` holds as its data).
pub struct Front<F> {
    app: F,
    ctx: web::Data<Ctx>,
    worker: web::Data<Worker>,
}

impl<F> Front<F> {
    pub fn new(
        app: impl actix_service::IntoServiceFactory<F, Request>,
        ctx: web::Data<Ctx>,
        worker: web::Data<Worker>,
    ) -> Self
    where
        F: ServiceFactory<Request>,
    {
        Front {
            app: app.into_factory(),
            ctx,
            worker,
        }
    }
}

impl<F, B> ServiceFactory<Request> for Front<F>
where
    F: ServiceFactory<Request, Config = AppConfig, Response = ServiceResponse<B>, Error = Error>,
    F::Future: 'static,
    F::Service: 'static,
    B: MessageBody + 'static,
{
    type Response = Response<BoxBody>;
    type Error = Error;
    type Config = AppConfig;
    type Service = FrontService<F::Service>;
    type InitError = F::InitError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Service, F::InitError>>>>;

    fn new_service(&self, cfg: AppConfig) -> <Self as ServiceFactory<Request>>::Future {
        let app = self.app.new_service(cfg);
        let (ctx, worker) = (self.ctx.clone(), self.worker.clone());
        Box::pin(async move {
            Ok(FrontService {
                app: app.await?,
                ctx,
                worker,
            })
        })
    }
}

pub struct FrontService<S> {
    app: S,
    ctx: web::Data<Ctx>,
    worker: web::Data<Worker>,
}

impl<S, B> Service<Request> for FrontService<S>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = Response<BoxBody>;
    type Error = Error;
    type Future = Answer;

    actix_service::forward_ready!(app);

    fn call(&self, req: Request) -> Answer {
        if is_api_call(req.method(), req.path()) {
            // The box is allocated first and the handler's future written into it: built into a
            // temporary and then boxed, all of its 4 KiB were copied, though only its arguments
            // are set before its first poll.
            let slot = Box::new_uninit();
            let answer = Box::write(
                slot,
                crate::proxy::forward(req, self.ctx.clone(), self.worker.clone()),
            );
            return Box::into_pin(answer);
        }
        let answer = self.app.call(req);
        Box::pin(async move { Ok(answer.await?.map_into_boxed_body().into()) })
    }
}

/// A call of one of the gateway's APIs: `POST` to one of their paths (`upstream::is_api_path`,
/// the paths `upstream::inbound` reads). Which API, and whether a model's path names one at all,
/// `proxy::forward` decides (404 when none), as the `App`'s routes to it did.
fn is_api_call(method: &Method, path: &str) -> bool {
    *method == Method::POST && to11_shared::upstream::is_api_path(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_calls_are_posts_to_the_apis_paths() {
        for path in [
            "/v1/chat/completions",
            "/v1/messages/count_tokens",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "/v1/models/x:streamGenerateContent",
            "/model/anthropic.claude/converse",
        ] {
            assert!(is_api_call(&Method::POST, path), "{path}");
            assert!(!is_api_call(&Method::GET, path), "GET {path}");
        }
        for path in [
            "/v1/models",
            "/v1/models/",
            "/model/",
            "/v1/chat/completions/",
            "/healthz",
            "/v1/chat",
        ] {
            assert!(!is_api_call(&Method::POST, path), "{path}");
        }
    }
}
