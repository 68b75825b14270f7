//! The routing decision: confab's own endpoints or the upstream.
//!
//! The decision is taken on the path as sent and on its normalized form (percent-decoded, dot
//! segments removed). When the two disagree the request is refused, so that no encoding trick
//! (`/%61pi/x`, `/a/../api/x`, `/api%2Fx`) reaches a route it does not appear to address. The
//! common path (no `%`, no dot segment) is checked without allocating.

use std::borrow::Cow;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    /// `/api` and everything below it.
    Api,
    Metrics,
    Docs,
    OpenApi,
    Dashboard,
    /// Everything else: forwarded to the upstream.
    Proxy,
}

/// Why a path could not be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbiguousPath;

/// Routes `path` (without its query), refusing paths whose normalized form routes elsewhere.
pub fn route(path: &[u8]) -> Result<Route, AmbiguousPath> {
    let raw = classify(path);
    if !needs_normalizing(path) {
        return Ok(raw);
    }
    if classify(&normalize(path)) == raw {
        Ok(raw)
    } else {
        Err(AmbiguousPath)
    }
}

/// Routes a path that is already in normal form.
pub fn classify(path: &[u8]) -> Route {
    match path {
        b"/healthz" => Route::Healthz,
        b"/metrics" => Route::Metrics,
        b"/openapi.json" => Route::OpenApi,
        _ if is_under(path, b"/api") => Route::Api,
        _ if is_under(path, b"/docs") => Route::Docs,
        _ if is_under(path, b"/dashboard") => Route::Dashboard,
        _ => Route::Proxy,
    }
}

/// Whether `path` is `prefix` itself or below it.
fn is_under(path: &[u8], prefix: &[u8]) -> bool {
    path.starts_with(prefix) && matches!(path.get(prefix.len()), None | Some(b'/'))
}

/// Whether normalizing could change the path: it has a percent escape or a `.` that may start
/// a dot segment.
fn needs_normalizing(path: &[u8]) -> bool {
    path.iter()
        .enumerate()
        .any(|(at, &byte)| byte == b'%' || (byte == b'.' && (at == 0 || path[at - 1] == b'/')))
}

/// Percent-decodes `path`, then removes its dot segments (RFC 3986 §5.2.4).
/// A path that needs neither is borrowed as it is.
pub fn normalize(path: &[u8]) -> Cow<'_, [u8]> {
    if !needs_normalizing(path) {
        return Cow::Borrowed(path);
    }
    let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode(path).into();
    Cow::Owned(remove_dot_segments(&decoded))
}

fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut output: Vec<&[u8]> = Vec::new();
    let segments: Vec<&[u8]> = path.split(|&byte| byte == b'/').collect();
    let last = segments.len().saturating_sub(1);
    for (index, segment) in segments.iter().enumerate() {
        match *segment {
            b"." => {}
            b".." => {
                if output.len() > 1 {
                    output.pop();
                }
            }
            _ => output.push(segment),
        }
        // A trailing dot segment leaves the path ending in a slash.
        if index == last && matches!(*segment, b"." | b"..") {
            output.push(b"");
        }
    }
    let joined = output.join(&b'/');
    if joined.first() == Some(&b'/') {
        joined
    } else {
        [b"/".as_slice(), &joined].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_own_routes() {
        assert_eq!(classify(b"/healthz"), Route::Healthz);
        assert_eq!(classify(b"/api"), Route::Api);
        assert_eq!(classify(b"/api/conversations"), Route::Api);
        assert_eq!(classify(b"/apiary"), Route::Proxy);
        assert_eq!(classify(b"/docs/x"), Route::Docs);
        assert_eq!(classify(b"/categories/MLA97994"), Route::Proxy);
        assert_eq!(classify(b"/healthz/"), Route::Proxy);
    }

    #[test]
    fn normalizes_dot_segments_and_escapes() {
        assert_eq!(&*normalize(b"/a/../api/x"), b"/api/x");
        assert_eq!(&*normalize(b"/%61pi/x"), b"/api/x");
        assert_eq!(&*normalize(b"/a/./b/."), b"/a/b/");
        assert_eq!(&*normalize(b"/../../x"), b"/x");
        assert_eq!(&*normalize(b"/a/b/.."), b"/a/");
        assert_eq!(&*normalize(b"/api%2Fx"), b"/api/x");
        assert!(matches!(normalize(b"/api/conversations"), Cow::Borrowed(_)));
    }

    #[test]
    fn refuses_paths_whose_forms_route_differently() {
        for tricky in [
            &b"/%61pi/x"[..],
            b"/a/../api/x",
            b"/api/../categories/1",
            b"/api%2Fx",
            b"/%2e%2e/api/x",
            b"/x/%2E%2E/healthz",
        ] {
            assert_eq!(route(tricky), Err(AmbiguousPath), "{tricky:?}");
        }
    }

    #[test]
    fn routes_paths_whose_forms_agree() {
        assert_eq!(route(b"/a/../categories/1"), Ok(Route::Proxy));
        assert_eq!(route(b"/categories/%41"), Ok(Route::Proxy));
        assert_eq!(route(b"/api/./conversations"), Ok(Route::Api));
        assert_eq!(route(b"/file.json"), Ok(Route::Proxy));
    }
}
