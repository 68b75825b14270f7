//! Parsing the raw URL query string of a conversations request.
//!
//! Rules (where more than one reading is reasonable, the one chosen here):
//! - Pairs are split on `&`, key and value on the first `=`; both are
//!   percent-decoded with `+` read as a space. A value that is not UTF-8 after
//!   decoding is an error for that parameter.
//! - Parameter names are case-sensitive; unknown parameters are ignored.
//! - A repeated parameter: the last occurrence wins (earlier ones are not validated).
//! - `company=` and `tags=` with nothing usable in them mean "no filter"; an empty
//!   `page`, `per_page` or `match` is an error.
//! - `match` accepts `any` or `all` in any letter case.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::error::QueryError;

/// Largest accepted `per_page`.
pub const MAX_PER_PAGE: u32 = 1000;
/// `per_page` when the request gives none.
pub const DEFAULT_PER_PAGE: u32 = 50;
/// Most distinct tags one query may list (bounds the work of one query).
pub const MAX_QUERY_TAGS: usize = 64;

/// How the listed tags combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TagMatch {
    /// At least one listed tag (the default).
    #[default]
    Any,
    /// Every listed tag.
    All,
}

/// A validated conversations query. Company and tags are stored lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationQuery {
    company: Option<String>,
    tags: Vec<String>,
    tag_match: TagMatch,
    page: u64,
    per_page: u32,
}

impl Default for ConversationQuery {
    fn default() -> Self {
        Self {
            company: None,
            tags: Vec::new(),
            tag_match: TagMatch::Any,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

/// The last raw (decoded) value of each known parameter, borrowed from the query string
/// unless decoding changed it.
#[derive(Default)]
struct RawParameters<'a> {
    company: Option<Cow<'a, str>>,
    tags: Option<Cow<'a, str>>,
    tag_match: Option<Cow<'a, str>>,
    page: Option<Cow<'a, str>>,
    per_page: Option<Cow<'a, str>>,
}

impl ConversationQuery {
    /// Parses the raw query string (the part after `?`, without it); `None` means no query.
    pub fn parse(raw_query: Option<&str>) -> Result<Self, QueryError> {
        let raw = RawParameters::collect(raw_query.unwrap_or(""))?;
        let defaults = Self::default();
        Ok(Self {
            company: raw.company.as_deref().and_then(parse_company),
            tags: raw
                .tags
                .as_deref()
                .map(parse_tags)
                .transpose()?
                .unwrap_or_default(),
            tag_match: raw
                .tag_match
                .as_deref()
                .map(parse_match)
                .transpose()?
                .unwrap_or_default(),
            page: raw
                .page
                .as_deref()
                .map(parse_page)
                .transpose()?
                .unwrap_or(defaults.page),
            per_page: raw
                .per_page
                .as_deref()
                .map(parse_per_page)
                .transpose()?
                .unwrap_or(defaults.per_page),
        })
    }

    /// The requested company key, lower-cased; `None` for no company filter.
    pub fn company(&self) -> Option<&str> {
        self.company.as_deref()
    }

    /// The requested tags, trimmed, lower-cased, without empties or repeats.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    pub fn tag_match(&self) -> TagMatch {
        self.tag_match
    }

    /// The 1-based page number.
    pub fn page(&self) -> u64 {
        self.page
    }

    pub fn per_page(&self) -> u32 {
        self.per_page
    }

    /// Index of the first result on the requested page (saturates for huge pages).
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(u64::from(self.per_page))
    }
}

impl<'a> RawParameters<'a> {
    fn collect(raw_query: &'a str) -> Result<Self, QueryError> {
        let mut raw = Self::default();
        for pair in raw_query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match decode_lossy(key).as_ref() {
                "company" => (&mut raw.company, "company"),
                "tags" => (&mut raw.tags, "tags"),
                "match" => (&mut raw.tag_match, "match"),
                "page" => (&mut raw.page, "page"),
                "per_page" => (&mut raw.per_page, "per_page"),
                _ => continue,
            };
            *slot.0 = Some(decode(value, slot.1)?);
        }
        Ok(raw)
    }
}

/// `text` with each `+` read as a space and its percent-escapes decoded, or `None` when it has
/// neither, so that the caller can borrow `text` as it is.
fn decoded_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return None;
    }
    let spaced = text.replace('+', " ");
    Some(percent_decode_str(&spaced).collect())
}

/// A decoded parameter name; bytes that are not UTF-8 become U+FFFD (no name has them).
fn decode_lossy(text: &str) -> Cow<'_, str> {
    match decoded_bytes(text) {
        None => Cow::Borrowed(text),
        Some(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// A decoded parameter value; one that is not UTF-8 once decoded is an error.
fn decode<'a>(text: &'a str, parameter: &'static str) -> Result<Cow<'a, str>, QueryError> {
    match decoded_bytes(text) {
        None => Ok(Cow::Borrowed(text)),
        Some(bytes) => String::from_utf8(bytes).map(Cow::Owned).map_err(|_| {
            QueryError::new(parameter, "value is not valid UTF-8 after percent-decoding")
        }),
    }
}

fn parse_company(value: &str) -> Option<String> {
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_lowercase())
}

fn parse_tags(value: &str) -> Result<Vec<String>, QueryError> {
    let mut tags: Vec<String> = Vec::new();
    for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let tag = tag.to_lowercase();
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    match tags.len() > MAX_QUERY_TAGS {
        true => Err(QueryError::new(
            "tags",
            format!("at most {MAX_QUERY_TAGS} distinct tags"),
        )),
        false => Ok(tags),
    }
}

fn parse_match(value: &str) -> Result<TagMatch, QueryError> {
    match value.to_ascii_lowercase().as_str() {
        "any" => Ok(TagMatch::Any),
        "all" => Ok(TagMatch::All),
        _ => Err(QueryError::new(
            "match",
            format!("expected `any` or `all`, got `{value}`"),
        )),
    }
}

fn parse_unsigned(value: &str, parameter: &'static str) -> Result<u64, QueryError> {
    let all_digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let parsed = all_digits.then(|| value.parse::<u64>().ok()).flatten();
    parsed.ok_or_else(|| {
        QueryError::new(
            parameter,
            format!("expected a positive integer, got `{value}`"),
        )
    })
}

fn parse_page(value: &str) -> Result<u64, QueryError> {
    match parse_unsigned(value, "page")? {
        0 => Err(QueryError::new("page", "must be 1 or more")),
        page => Ok(page),
    }
}

fn parse_per_page(value: &str) -> Result<u32, QueryError> {
    let per_page = parse_unsigned(value, "per_page")?;
    match u32::try_from(per_page) {
        Ok(n @ 1..=MAX_PER_PAGE) => Ok(n),
        _ => Err(QueryError::new(
            "per_page",
            format!("must be between 1 and {MAX_PER_PAGE}, got {per_page}"),
        )),
    }
}

#[cfg(test)]
mod tests;
