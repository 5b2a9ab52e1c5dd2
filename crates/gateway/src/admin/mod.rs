//! `/admin/v1`: runtime destinations, virtual keys and their budgets, and spend, behind the
//! admin bearer token.
//!
//! Every write goes to the store first and is then applied to this replica at once; other
//! replicas follow through the config version.

mod destinations;
mod error;
mod keys;
pub mod ops;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
pub use error::AdminError;

/// The admin token, kept only as a digest: comparing digests in constant time leaks
/// neither the token's bytes nor its length.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
    /// Who the audit log names: a short fingerprint, never the token itself.
    actor: Arc<str>,
}

impl AdminToken {
    pub fn new(token: &str) -> Self {
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let actor = format!("admin:{}", &hex::encode(digest)[..8]);
        Self {
            digest,
            actor: actor.into(),
        }
    }

    fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.digest.ct_eq(&digest))
    }
}

/// The audit log's "who" for the request being served.
#[derive(Clone)]
pub struct Actor(pub Arc<str>);

pub fn router(state: Arc<AppState>, token: AdminToken) -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/destinations",
            get(destinations::list).post(destinations::create),
        )
        .route("/destinations/test", post(destinations::test_unsaved))
        .route(
            "/destinations/{name}",
            get(destinations::show)
                .patch(destinations::update)
                .delete(destinations::remove),
        )
        .route(
            "/destinations/{name}/overrides",
            axum::routing::delete(destinations::reset_overrides),
        )
        .route("/destinations/{name}/test", post(destinations::test_saved))
        .route(
            "/destinations/{name}/send-test-trace",
            post(destinations::send_test_trace),
        )
        .route("/destinations/{name}/stats", get(destinations::stats))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{name}", axum::routing::delete(keys::revoke))
        .route(
            "/keys/{name}/budget",
            axum::routing::put(keys::set_budget).delete(keys::clear_budget),
        )
        .route("/spend", get(keys::spend))
        .route("/audit", get(keys::audit))
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .layer(middleware::from_fn(move |req, next| {
            check_token(token.clone(), req, next)
        }))
        .with_state(state)
}

async fn check_token(token: AdminToken, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned());
    match presented {
        Some(t) if token.matches(&t) => {
            req.extensions_mut().insert(Actor(token.actor.clone()));
            next.run(req).await
        }
        _ => AdminError::Unauthorized.into_response_inner(),
    }
}

/// Lets handlers name the actor without repeating the extractor's type.
pub type ActorExt = Extension<Actor>;
