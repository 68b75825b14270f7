//! The configured upstream: its URL, parsed and resolved once at startup.

use std::net::{SocketAddr, ToSocketAddrs};

use rustls_pki_types::ServerName;

/// The port of an `http://` upstream whose URL names none.
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// The port of an `https://` upstream whose URL names none.
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// Why an upstream URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream URL {url:?} is not a valid URL: {reason}")]
    Invalid { url: String, reason: String },
    #[error("upstream URL {url:?}: only http:// and https:// upstreams are supported")]
    UnsupportedScheme { url: String },
    #[error("upstream URL {url:?}: a query or fragment is not allowed in the base URL")]
    HasQuery { url: String },
    #[error("upstream URL {url:?}: {host:?} is neither a DNS name nor an IP address, so no TLS server name can be made of it")]
    InvalidServerName { url: String, host: String },
    #[error("upstream host {authority:?} could not be resolved: {source}")]
    Resolve {
        authority: String,
        source: std::io::Error,
    },
}

/// How confab talks to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// HTTP/1.1 over plain TCP.
    Http,
    /// HTTP/1.1 over TLS over TCP.
    Https,
}

/// A resolved upstream.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    /// The URL as configured, for logs.
    pub url: String,
    pub scheme: Scheme,
    /// `host[:port]` as written in the URL: the `Host` of forwarded requests.
    pub authority: String,
    /// The addresses to connect to, in resolver order.
    pub addrs: Vec<SocketAddr>,
    /// A path prefix (without a trailing slash) put before every forwarded path; often empty.
    pub base_path: String,
    /// The name the upstream's certificate must be valid for, sent as SNI when it is a DNS
    /// name (an IP address is verified against the certificate but never sent as SNI).
    /// `Some` exactly for [`Scheme::Https`].
    pub server_name: Option<ServerName<'static>>,
}

impl UpstreamTarget {
    /// Parses `url` (`http[s]://host[:port][/base]`) and resolves its host.
    ///
    /// TODO: re-resolve the host periodically once upstreams behind changing DNS records
    /// matter; today the addresses are fixed at startup.
    pub fn resolve(url: &str) -> Result<UpstreamTarget, UpstreamError> {
        let parsed = ParsedUrl::parse(url)?;
        let addrs = (parsed.host.as_str(), parsed.port)
            .to_socket_addrs()
            .map_err(|source| UpstreamError::Resolve {
                authority: parsed.authority.clone(),
                source,
            })?
            .collect();
        Ok(UpstreamTarget {
            url: url.to_owned(),
            scheme: parsed.scheme,
            authority: parsed.authority,
            addrs,
            base_path: parsed.base_path,
            server_name: parsed.server_name,
        })
    }
}

/// An upstream URL taken apart, before its host is resolved.
#[derive(Debug)]
struct ParsedUrl {
    scheme: Scheme,
    authority: String,
    /// The host without the brackets of an IPv6 literal.
    host: String,
    port: u16,
    base_path: String,
    server_name: Option<ServerName<'static>>,
}

impl ParsedUrl {
    fn parse(url: &str) -> Result<ParsedUrl, UpstreamError> {
        let invalid = |reason: String| UpstreamError::Invalid {
            url: url.to_owned(),
            reason,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|error: http::uri::InvalidUri| invalid(error.to_string()))?;
        let (scheme, default_port) = match uri.scheme_str() {
            Some("http") => (Scheme::Http, DEFAULT_HTTP_PORT),
            Some("https") => (Scheme::Https, DEFAULT_HTTPS_PORT),
            _ => {
                return Err(UpstreamError::UnsupportedScheme {
                    url: url.to_owned(),
                })
            }
        };
        if uri.query().is_some() {
            return Err(UpstreamError::HasQuery {
                url: url.to_owned(),
            });
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("no host".to_owned()))?;
        let host = authority.host().trim_matches(['[', ']']).to_owned();
        let server_name = match scheme {
            Scheme::Http => None,
            Scheme::Https => Some(server_name(url, &host)?),
        };
        Ok(ParsedUrl {
            scheme,
            authority: authority.to_string(),
            port: authority.port_u16().unwrap_or(default_port),
            host,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            server_name,
        })
    }
}

/// The TLS server name of `host`: an IP address for an IP literal, else a DNS name.
fn server_name(url: &str, host: &str) -> Result<ServerName<'static>, UpstreamError> {
    ServerName::try_from(host.to_owned()).map_err(|_| UpstreamError::InvalidServerName {
        url: url.to_owned(),
        host: host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use super::*;

    #[test]
    fn parses_authority_and_base_path() {
        let target = UpstreamTarget::resolve("http://127.0.0.1:9000/v1/").expect("valid");
        assert_eq!(target.scheme, Scheme::Http);
        assert_eq!(target.authority, "127.0.0.1:9000");
        assert_eq!(target.base_path, "/v1");
        assert_eq!(target.addrs, vec![SocketAddr::from(([127, 0, 0, 1], 9000))]);
        assert!(target.server_name.is_none());
        let bare = UpstreamTarget::resolve("http://127.0.0.1:9000").expect("valid");
        assert_eq!(bare.base_path, "");
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        let http = UpstreamTarget::resolve("http://127.0.0.1").expect("valid");
        assert_eq!(http.addrs[0].port(), DEFAULT_HTTP_PORT);
        let https = UpstreamTarget::resolve("https://127.0.0.1/api").expect("valid");
        assert_eq!(https.scheme, Scheme::Https);
        assert_eq!(https.addrs[0].port(), DEFAULT_HTTPS_PORT);
        assert_eq!(
            https.authority, "127.0.0.1",
            "Host keeps the URL's authority"
        );
        assert_eq!(https.base_path, "/api");
    }

    #[test]
    fn https_server_name_is_a_dns_name_or_an_ip_address() {
        let named = ParsedUrl::parse("https://api.example.com:8443").expect("valid");
        assert_eq!(named.authority, "api.example.com:8443");
        assert_eq!(named.port, 8443);
        assert_eq!(
            named.server_name,
            Some(ServerName::try_from("api.example.com").expect("dns name"))
        );
        assert!(matches!(named.server_name, Some(ServerName::DnsName(_))));

        let v4 = ParsedUrl::parse("https://127.0.0.1:8443").expect("valid");
        assert!(
            matches!(&v4.server_name, Some(ServerName::IpAddress(ip)) if IpAddr::from(*ip) == IpAddr::from([127, 0, 0, 1])),
            "{:?}",
            v4.server_name
        );

        let v6 = ParsedUrl::parse("https://[::1]:8443").expect("valid");
        assert_eq!(v6.authority, "[::1]:8443");
        assert!(
            matches!(&v6.server_name, Some(ServerName::IpAddress(ip)) if IpAddr::from(*ip) == IpAddr::from(Ipv6Addr::LOCALHOST)),
            "{:?}",
            v6.server_name
        );
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        assert!(matches!(
            UpstreamTarget::resolve("ftp://example.com"),
            Err(UpstreamError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            UpstreamTarget::resolve("https://-leading-hyphen.example"),
            Err(UpstreamError::InvalidServerName { .. })
        ));
        assert!(UpstreamTarget::resolve("not a url").is_err());
        assert!(UpstreamTarget::resolve("http://127.0.0.1:1/?q").is_err());
        assert!(UpstreamTarget::resolve("https://127.0.0.1:1/?q").is_err());
    }
}
