//! One layer authenticates every client API route. A request without a valid virtual key is
//! answered 401 before its body is read, parsed or recorded, so unauthenticated clients
//! cannot flood the destinations; the key's name reaches the handler as a [`KeyName`]
//! request extension.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api_error::{self, ApiShape};
use crate::control::Control;

/// The name of the virtual key a request presented. Absent while the gateway runs open.
#[derive(Debug, Clone)]
pub struct KeyName(pub Arc<str>);

/// Puts the key check in front of a handler (`Handler::layer`); its 401 is in `shape`, the
/// route's API's.
#[derive(Clone)]
pub struct AuthLayer {
    control: Arc<Control>,
    shape: ApiShape,
}

impl AuthLayer {
    pub fn new(control: Arc<Control>, shape: ApiShape) -> Self {
        Self { control, shape }
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
        match self.layer.control.keys.authenticate(req.headers()) {
            Ok(name) => {
                if let Some(name) = name {
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
