//! The configured upstream: its URL, parsed and resolved once at startup.

use std::net::{SocketAddr, ToSocketAddrs};

/// Why an upstream URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream URL {url:?} is not a valid URL: {reason}")]
    Invalid { url: String, reason: String },
    #[error("upstream URL {url:?}: only http:// upstreams are supported so far")]
    UnsupportedScheme { url: String },
    #[error("upstream URL {url:?}: a query or fragment is not allowed in the base URL")]
    HasQuery { url: String },
    #[error("upstream host {authority:?} could not be resolved: {source}")]
    Resolve {
        authority: String,
        source: std::io::Error,
    },
}

/// A resolved upstream.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// The URL as configured, for logs.
    pub url: String,
    /// `host[:port]` as written in the URL: the `Host` of forwarded requests.
    pub authority: String,
    /// The addresses to connect to, in resolver order.
    pub addrs: Vec<SocketAddr>,
    /// A path prefix (without a trailing slash) put before every forwarded path; often empty.
    pub base_path: String,
}

impl UpstreamTarget {
    /// Parses `url` (`http://host[:port][/base]`) and resolves its host.
    ///
    /// TODO: re-resolve the host periodically once upstreams behind changing DNS records
    /// matter; today the addresses are fixed at startup.
    pub fn resolve(url: &str) -> Result<UpstreamTarget, UpstreamError> {
        let uri: http::Uri =
            url.parse()
                .map_err(|error: http::uri::InvalidUri| UpstreamError::Invalid {
                    url: url.to_owned(),
                    reason: error.to_string(),
                })?;
        if uri.scheme_str() != Some("http") {
            return Err(UpstreamError::UnsupportedScheme {
                url: url.to_owned(),
            });
        }
        if uri.query().is_some() {
            return Err(UpstreamError::HasQuery {
                url: url.to_owned(),
            });
        }
        let Some(authority) = uri.authority() else {
            return Err(UpstreamError::Invalid {
                url: url.to_owned(),
                reason: "no host".to_owned(),
            });
        };
        let port = authority.port_u16().unwrap_or(80);
        let addrs = (authority.host().trim_matches(['[', ']']), port)
            .to_socket_addrs()
            .map_err(|source| UpstreamError::Resolve {
                authority: authority.to_string(),
                source,
            })?
            .collect();
        Ok(UpstreamTarget {
            url: url.to_owned(),
            authority: authority.to_string(),
            addrs,
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authority_and_base_path() {
        let target = UpstreamTarget::resolve("http://127.0.0.1:9000/v1/").expect("valid");
        assert_eq!(target.authority, "127.0.0.1:9000");
        assert_eq!(target.base_path, "/v1");
        assert_eq!(target.addrs, vec![SocketAddr::from(([127, 0, 0, 1], 9000))]);
        let bare = UpstreamTarget::resolve("http://127.0.0.1:9000").expect("valid");
        assert_eq!(bare.base_path, "");
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        assert!(matches!(
            UpstreamTarget::resolve("https://example.com"),
            Err(UpstreamError::UnsupportedScheme { .. })
        ));
        assert!(UpstreamTarget::resolve("not a url").is_err());
        assert!(UpstreamTarget::resolve("http://127.0.0.1:1/?q").is_err());
    }
}
