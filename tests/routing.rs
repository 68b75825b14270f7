//! Black-box tests of confab's routing: which paths it answers itself (`/healthz`, `/api` and
//! `/api/...`, `/metrics`, `/docs`, `/openapi.json`, `/dashboard`) and which it proxies, and
//! that percent-encoding or dot segments can never make a path route one way raw and another
//! way normalized (such paths get 400 `ambiguous-path` and never reach the upstream).

mod support;

use support::{assert_problem, get, request, Proxy, Upstream};

/// Own routes whose features have not landed yet: they answer 404 `not-found` and are never
/// proxied. Remove a route from this list when its feature lands (and test it where it lives).
const NOT_YET_IMPLEMENTED: [&str; 6] =
    ["/api", "/api?x=1", "/api/", "/api/x", "/api/%78", "/docs/x"];

#[test]
fn healthz_answers_ok_json() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    for target in ["/healthz", "/healthz?probe=1"] {
        let response = client.exchange(&get(target));
        assert_eq!(response.status, 200, "{target}: {:?}", response.text());
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{target}: content type {content_type:?}"
        );
        assert_eq!(response.json(), serde_json::json!({"status": "ok"}));
    }
    assert_eq!(upstream.connections(), 0, "/healthz is not proxied");
}

#[test]
fn healthz_answers_head_without_body() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    let response = client.exchange_head(&request("HEAD", "/healthz", &[], b""));
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type:?}"
    );
    // Any body bytes after the HEAD response would garble this next one.
    let next = client.exchange(&get("/healthz"));
    assert_eq!(next.json(), serde_json::json!({"status": "ok"}));
    assert_eq!(upstream.connections(), 0, "/healthz is not proxied");
}

#[test]
fn healthz_rejects_other_methods_with_allow() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);

    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
        let response = proxy.exchange(&request(method, "/healthz", &[], body));
        assert_problem(&response, 405, "method-not-allowed");
        for allowed in ["GET", "HEAD"] {
            assert!(
                response.headers.has_token("allow", allowed),
                "{method}: Allow {:?} lacks {allowed}",
                response.header("allow")
            );
        }
    }
    assert_eq!(upstream.connections(), 0, "/healthz is not proxied");
}

#[test]
fn unimplemented_own_routes_answer_404_problem() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    for target in NOT_YET_IMPLEMENTED {
        let response = client.exchange(&get(target));
        assert_eq!(response.status, 404, "{target}: {:?}", response.text());
        assert_problem(&response, 404, "not-found");
    }
    assert_eq!(upstream.connections(), 0, "own routes are never proxied");
}

#[test]
fn other_paths_are_proxied() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    for target in [
        "/",
        "/categories/MLA97994",
        "/apix",
        "/api-v2/x",
        "/healthzz",
        "/dashboards",
        "/openapi.yaml",
    ] {
        let response = client.exchange(&get(target));
        assert_eq!(response.status, 200, "{target}: {:?}", response.text());
        assert_eq!(
            response.json()["target"],
            target,
            "{target} reached the upstream"
        );
    }
}

#[test]
fn paths_routed_differently_once_normalized_are_ambiguous() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);

    for target in [
        "/%61pi/x",
        "/%61pi",
        "/a/../api/x",
        "/a/../api",
        "/api/../categories/1",
        "/api%2Fx",
        "/api%2fx",
        "/%2e%2e/api/x",
        "/%2E%2E/api/x",
        "/.%2e/api/x",
        "/a/%2e%2e/api/x",
        "/api/%2e%2e/categories/1",
        "/%68ealthz",
        "/x/../healthz",
        "/categories/../metrics",
        "/api/x/../../categories/1",
    ] {
        let response = proxy.exchange(&get(target));
        assert_problem(&response, 400, "ambiguous-path");
    }
    assert_eq!(
        upstream.connections(),
        0,
        "no ambiguous path may reach the upstream"
    );
}

#[test]
fn normalization_that_keeps_the_route_forwards_the_raw_path() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let mut client = proxy.client();

    for target in [
        "/a/../categories/1",
        "/a/./categories/1",
        "/x/%2e%2e/categories/1",
        "/categories/%4D%4C%41",
    ] {
        let response = client.exchange(&get(target));
        assert_eq!(response.status, 200, "{target}: {:?}", response.text());
        assert_eq!(response.json()["target"], target, "forwarded byte for byte");
    }
}
