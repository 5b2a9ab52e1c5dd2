//! One layer authenticates every client API route. A request without a valid virtual key is
//! answered 401 before its body is read, parsed or recorded, so unauthenticated clients
//! cannot flood the destinations; the key's name reaches the handler as a [`KeyName`]
//! request extension. On the routes that spend, a key over its budget is answered 429
//! (`insufficient_quota`, `budget_exceeded`) from the in-memory budget view, also before its
//! body is read, and that refusal is traced through the proxy's reject path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatecast_proxy::proxy::unix_nanos;
use gatecast_proxy::{Incoming, ProxyError};

use crate::api_error::{self, ApiShape};
use crate::app::AppState;

/// The name of the virtual key a request presented. Absent while the gateway runs open.
#[derive(Debug, Clone)]
pub struct KeyName(pub Arc<str>);

/// Puts the key check in front of a handler (`Handler::layer`); its 401 is in `shape`, the
/// route's API's.
#[derive(Clone)]
pub struct AuthLayer {
    state: Arc<AppState>,
    shape: ApiShape,
    /// Whether the route spends, so that a key over its budget is refused.
    spending: bool,
}

impl AuthLayer {
    pub fn new(state: Arc<AppState>, shape: ApiShape) -> Self {
        Self {
            state,
            shape,
            spending: false,
        }
    }

    /// Also refuses keys over their budget (the routes that call a provider).
    pub fn spending(mut self) -> Self {
        self.spending = true;
        self
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S> tower::Service<Request> for Auth<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        match self.layer.state.control.keys.authenticate(req.headers()) {
            Ok(name) => {
                if let Some(name) = name {
                    if self.layer.spending {
                        if let Err(over) = self.layer.state.spend.budgets.check(&name) {
                            return AuthFuture::Refused {
                                response: Some(self.refuse_over_budget(req, name, over)),
                            };
                        }
                    }
                    req.extensions_mut().insert(KeyName(name));
                }
                AuthFuture::Passed {
                    inner: self.inner.call(req),
                }
            }
            Err(failure) => {
                metrics::counter!("gatecast_requests_unauthorized_total").increment(1);
                let error = api_error::unauthorized(failure);
                AuthFuture::Refused {
                    response: Some(api_error::respond(&error, self.layer.shape)),
                }
            }
        }
    }
}

impl<S> Auth<S> {
    /// The 429 of a key over its budget, traced as the proxy traces every refusal (with the
    /// key's name, so a destination filtering by key sees it); the body is never read.
    fn refuse_over_budget(&self, req: Request, key: Arc<str>, over: ProxyError) -> Response {
        let accepted = std::time::Instant::now();
        metrics::counter!("gatecast_budget_refusals_total", "key" => key.to_string()).increment(1);
        let (parts, _) = req.into_parts();
        let incoming = Incoming {
            headers: parts.headers,
            body: Default::default(),
            key_name: Some(key),
            accepted,
            accepted_unix_nanos: unix_nanos(),
        };
        let api = match self.layer.shape {
            ApiShape::Anthropic => gatecast_proxy::api::ClientApi::Messages,
            ApiShape::OpenAi => gatecast_proxy::api::ClientApi::ChatCompletions,
        };
        let response = self.layer.state.proxy.reject_as(api, &incoming, over);
        self.layer
            .state
            .request_metrics
            .record(response.status(), accepted.elapsed());
        response.map(Body::new)
    }
}

pin_project_lite::pin_project! {
    /// The route's answer, or the 401.
    #[project = AuthProj]
    pub enum AuthFuture<F> {
        Refused { response: Option<Response> },
        Passed { #[pin] inner: F },
    }
}

impl<F, E> Future for AuthFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AuthProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()))),
            AuthProj::Passed { inner } => inner.poll(cx),
        }
    }
}
