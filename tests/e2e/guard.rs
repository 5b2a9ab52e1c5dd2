//! The client API refuses what a web page could send on its owner's behalf: a body that is not
//! JSON, a browser origin that is not configured, and, while no virtual key exists, a `Host`
//! the gateway is not known by (DNS rebinding).

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

use crate::harness::Env;

const TOKEN: &str = "guard-admin-token";

fn ask() -> Value {
    json!({"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

/// The status, the headers and the body of a chat request sent with `headers` (and a JSON
/// content type unless `headers` sets one).
async fn post(env: &Env, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Value) {
    let mut req = env.client.post(env.url(path)).body(ask().to_string());
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn get(env: &Env, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = env.client.get(env.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

fn assert_refused(body: &Value, code: &str, names: &str) {
    let e = &body["error"];
    assert_eq!(e["code"], code, "{body}");
    assert_eq!(e["type"], "invalid_request_error", "{body}");
    assert!(e["param"].is_null(), "{body}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains(names), "{message:?} names {names:?}");
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(HeaderValue::to_str)
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
}

#[tokio::test]
async fn a_post_that_is_not_json_gets_415_before_anything_is_forwarded() {
    let env = Env::start().await;
    for path in ["/v1/chat/completions", "/chat/completions"] {
        for content_type in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let (status, _, body) = post(&env, path, &[("content-type", content_type)]).await;
            assert_eq!(status, 415, "{path} {content_type}");
            assert_refused(&body, "unsupported_media_type", content_type);
        }
    }
    // A `fetch` with a Blob body sends no content type at all.
    let resp = env
        .client
        .post(env.url("/v1/chat/completions"))
        .body(ask().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert_refused(&body, "unsupported_media_type", "no Content-Type");
    assert!(
        env.mock.requests().is_empty(),
        "nothing reached the provider"
    );

    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.example+json",
    ] {
        let (status, _, body) = post(
            &env,
            "/v1/chat/completions",
            &[("content-type", content_type)],
        )
        .await;
        assert_eq!(status, 200, "{content_type}: {body}");
    }
    let metrics = env.metrics().await;
    assert!(
        metrics.contains(r#"gatecast_requests_refused_total{reason="content_type"}"#),
        "refusals are counted"
    );
}

#[tokio::test]
async fn browser_requests_from_an_unlisted_origin_are_refused() {
    let env = Env::start().await;
    let evil = "https://evil.example";
    let (status, headers, body) = post(&env, "/v1/chat/completions", &[("origin", evil)]).await;
    assert_eq!(status, 403);
    assert_refused(&body, "origin_not_allowed", evil);
    assert!(headers.get("access-control-allow-origin").is_none());
    // The `text/plain` POST a page sends without a preflight is refused for its origin first.
    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        &[("origin", evil), ("content-type", "text/plain")],
    )
    .await;
    assert_eq!(status, 403);
    assert_refused(&body, "origin_not_allowed", evil);
    // A page that sends no Origin still says where it comes from.
    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    assert_eq!(status, 403);
    assert_refused(&body, "origin_not_allowed", "Sec-Fetch-Site");
    assert_eq!(get(&env, "/v1/models", &[("origin", evil)]).await, 403);
    let preflight = env
        .client
        .request(reqwest::Method::OPTIONS, env.url("/v1/chat/completions"))
        .header("origin", evil)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 403);
    assert!(preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    assert!(
        env.mock.requests().is_empty(),
        "nothing reached the provider"
    );

    // Probes are not browser-guarded, and a request typed into the address bar is not cross-site.
    assert_eq!(get(&env, "/health", &[("origin", evil)]).await, 200);
    assert_eq!(
        get(&env, "/v1/models", &[("sec-fetch-site", "none")]).await,
        200
    );
}

#[tokio::test]
async fn a_listed_origin_gets_cors_headers_and_a_working_preflight() {
    let env = Env::with_server(
        "",
        None,
        r#"cors_origins = ["https://app.example", "http://localhost:3000"]"#,
    )
    .await;
    let app = "https://app.example";
    let preflight = env
        .client
        .request(reqwest::Method::OPTIONS, env.url("/v1/chat/completions"))
        .header("origin", app)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, x-gatecast-privacy, x-session-id",
        )
        .send()
        .await
        .unwrap();
    assert!(
        preflight.status().is_success(),
        "preflight: {}",
        preflight.status()
    );
    let h = preflight.headers();
    assert_eq!(header(h, "access-control-allow-origin"), app);
    assert!(header(h, "access-control-allow-methods").contains("POST"));
    let allowed = header(h, "access-control-allow-headers").to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "x-gatecast-privacy",
        "x-session-id",
    ] {
        assert!(allowed.contains(name), "{name} in {allowed}");
    }
    assert!(header(h, "vary").to_ascii_lowercase().contains("origin"));

    let (status, headers, body) = post(
        &env,
        "/v1/chat/completions",
        &[("origin", app), ("x-session-id", "s-1")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["choices"][0]["message"]["content"].is_string());
    assert_eq!(header(&headers, "access-control-allow-origin"), app);
    assert!(header(&headers, "access-control-expose-headers").contains("x-gatecast-trace-id"));
    assert!(header(&headers, "vary")
        .to_ascii_lowercase()
        .contains("origin"));

    // The page can read why a request was refused, and the list is exact.
    let (status, headers, _) = post(
        &env,
        "/v1/chat/completions",
        &[("origin", app), ("content-type", "text/plain")],
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(header(&headers, "access-control-allow-origin"), app);
    let (status, _, _) = post(
        &env,
        "/v1/chat/completions",
        &[("origin", "http://localhost:3000")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        &[("origin", "https://app.example.evil.example")],
    )
    .await;
    assert_eq!(status, 403);
    assert_refused(&body, "origin_not_allowed", "app.example.evil.example");
}

#[tokio::test]
async fn a_rebinding_host_is_refused_until_a_key_exists() {
    let env = Env::with_options("", Some(TOKEN)).await;
    let port = env.addr.port();
    for host in ["evil.example".to_owned(), format!("evil.example:{port}")] {
        let (status, _, body) = post(&env, "/v1/chat/completions", &[("host", &host)]).await;
        assert_eq!(status, 403, "{host}");
        assert_refused(&body, "host_not_allowed", &host);
        assert_eq!(get(&env, "/v1/models", &[("host", &host)]).await, 403);
        let preflight = env
            .client
            .request(reqwest::Method::OPTIONS, env.url("/v1/chat/completions"))
            .header("host", &host)
            .header("origin", format!("http://{host}"))
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 403);
    }
    assert!(
        env.mock.requests().is_empty(),
        "nothing reached the provider"
    );
    // The names of a loopback listener, with or without the port.
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let (status, _, body) = post(&env, "/v1/chat/completions", &[("host", &host)]).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    // Probes answer whatever name they use.
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            get(&env, path, &[("host", "evil.example")]).await,
            200,
            "{path}"
        );
    }

    // With a key, the key decides, as it always did.
    let resp = env
        .client
        .post(env.url("/admin/v1/keys"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let key: Value = resp.json().await.unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {key}");
    let (status, _, body) = post(&env, "/v1/chat/completions", &[("host", "evil.example")]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let (status, _, body) = post(
        &env,
        "/v1/chat/completions",
        &[("host", "evil.example"), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn allowed_hosts_name_the_gateway_while_it_has_no_keys() {
    let env = Env::with_server("", None, r#"allowed_hosts = ["gatecast.internal"]"#).await;
    let port = env.addr.port();
    for host in [
        "gatecast.internal".to_owned(),
        format!("Gatecast.Internal:{port}"),
    ] {
        let (status, _, body) = post(&env, "/v1/chat/completions", &[("host", &host)]).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    let (status, _, body) = post(&env, "/v1/chat/completions", &[("host", "other.internal")]).await;
    assert_eq!(status, 403);
    assert_refused(&body, "host_not_allowed", "other.internal");
}
