//! What a job asks for: its kind and checked parameters, parsed from the JSON of
//! `POST /api/jobs` (or from the journal, where it was stored in the same form).

use std::path::{Component, Path, PathBuf};

use serde_json::{json, Map, Value};

/// Most words one `keyword-stats` job counts.
pub const MAX_KEYWORDS: usize = 64;
/// Longest word `keyword-stats` accepts, in characters.
pub const MAX_KEYWORD_CHARS: usize = 64;
/// Longest `path` an `ingest` job accepts, in bytes.
pub const MAX_INGEST_PATH_BYTES: usize = 4096;

/// A job's kind and parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSpec {
    /// Conversations per (company, tag), optionally for one company key.
    TagStats { company: Option<String> },
    /// Occurrences of words in question and answer text, per company and tag.
    KeywordStats {
        words: Vec<String>,
        company: Option<String>,
    },
    /// Per transcript: conversations, tag histogram, word count.
    TranscriptSummary { company: Option<String> },
    /// Adds the dataset at `path` (relative to the data root) to what is served.
    Ingest {
        /// As submitted (relative to the data root).
        path: String,
        /// Resolved, canonical, inside the data root.
        resolved: PathBuf,
    },
    /// Re-reads every served dataset from disk.
    Reload,
}

/// The kinds `POST /api/jobs` accepts.
pub const JOB_KINDS: [&str; 5] = [
    "tag-stats",
    "keyword-stats",
    "transcript-summary",
    "ingest",
    "reload",
];

impl JobSpec {
    /// Parses and checks `kind` and `params`; `data_root` is the canonical folder ingest paths
    /// are relative to. The error is a sentence for a human.
    pub fn parse(kind: &str, params: &Value, data_root: &Path) -> Result<JobSpec, String> {
        let params = match params {
            Value::Null => &Map::new(),
            Value::Object(params) => params,
            _ => return Err("params must be a JSON object".into()),
        };
        let spec = match kind {
            "tag-stats" => JobSpec::TagStats {
                company: company(params)?,
            },
            "keyword-stats" => JobSpec::KeywordStats {
                words: words(params)?,
                company: company(params)?,
            },
            "transcript-summary" => JobSpec::TranscriptSummary {
                company: company(params)?,
            },
            "ingest" => ingest(params, data_root)?,
            "reload" => JobSpec::Reload,
            other => {
                return Err(format!(
                    "unknown kind {other:?}; expected one of {}",
                    JOB_KINDS.join(", ")
                ))
            }
        };
        let allowed: &[&str] = match spec {
            JobSpec::TagStats { .. } | JobSpec::TranscriptSummary { .. } => &["company"],
            JobSpec::KeywordStats { .. } => &["words", "company"],
            JobSpec::Ingest { .. } => &["path"],
            JobSpec::Reload => &[],
        };
        match params.keys().find(|name| !allowed.contains(&name.as_str())) {
            Some(name) => Err(format!("params.{name} is not a parameter of {kind}")),
            None => Ok(spec),
        }
    }

    /// A journaled job whose parameters no longer check (an ingest whose folder is gone),
    /// kept for display only.
    pub(crate) fn unparsed(kind: &str, params: &Value) -> Option<JobSpec> {
        match kind {
            "ingest" => Some(JobSpec::Ingest {
                path: params.get("path")?.as_str()?.to_owned(),
                resolved: PathBuf::new(),
            }),
            other => JobSpec::parse(other, params, Path::new("/")).ok(),
        }
    }

    /// The kind's name, as submitted.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::TagStats { .. } => "tag-stats",
            JobSpec::KeywordStats { .. } => "keyword-stats",
            JobSpec::TranscriptSummary { .. } => "transcript-summary",
            JobSpec::Ingest { .. } => "ingest",
            JobSpec::Reload => "reload",
        }
    }

    /// Whether the job runs on the serial queue (it changes what is served).
    pub fn is_serial(&self) -> bool {
        matches!(self, JobSpec::Ingest { .. } | JobSpec::Reload)
    }

    /// The parameters as shown to clients and kept in the journal.
    pub fn params(&self) -> Value {
        let company = |company: &Option<String>| match company {
            Some(company) => json!({ "company": company }),
            None => json!({}),
        };
        match self {
            JobSpec::TagStats { company: key } | JobSpec::TranscriptSummary { company: key } => {
                company(key)
            }
            JobSpec::KeywordStats {
                words,
                company: key,
            } => {
                let mut params = company(key);
                params["words"] = json!(words);
                params
            }
            JobSpec::Ingest { path, .. } => json!({ "path": path }),
            JobSpec::Reload => json!({}),
        }
    }
}

fn company(params: &Map<String, Value>) -> Result<Option<String>, String> {
    match params.get("company") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(key)) if key.trim().is_empty() => {
            Err("params.company must not be empty".into())
        }
        Some(Value::String(key)) => Ok(Some(key.trim().to_owned())),
        Some(_) => Err("params.company must be a string".into()),
    }
}

fn words(params: &Map<String, Value>) -> Result<Vec<String>, String> {
    let Some(Value::Array(items)) = params.get("words") else {
        return Err("params.words must be a list of words".into());
    };
    if items.is_empty() || items.len() > MAX_KEYWORDS {
        return Err(format!("params.words must hold 1 to {MAX_KEYWORDS} words"));
    }
    let mut words: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(word) = item else {
            return Err("params.words must hold strings".into());
        };
        let word = word.trim().to_lowercase();
        let single = !word.is_empty() && word.chars().all(char::is_alphanumeric);
        if !single || word.chars().count() > MAX_KEYWORD_CHARS {
            return Err(format!(
                "params.words: {word:?} is not one word of at most {MAX_KEYWORD_CHARS} letters or digits"
            ));
        }
        if !words.contains(&word) {
            words.push(word);
        }
    }
    Ok(words)
}

fn ingest(params: &Map<String, Value>, data_root: &Path) -> Result<JobSpec, String> {
    let Some(Value::String(path)) = params.get("path") else {
        return Err("params.path must be a string: a dataset relative to the data root".into());
    };
    let resolved = resolve_inside(path, data_root)?;
    Ok(JobSpec::Ingest {
        path: path.clone(),
        resolved,
    })
}

/// Resolves `relative` inside `root` (canonical). Refuses absolute paths, `..`, and any path
/// that leaves the root once symbolic links are followed.
pub fn resolve_inside(relative: &str, root: &Path) -> Result<PathBuf, String> {
    if relative.is_empty() || relative.len() > MAX_INGEST_PATH_BYTES {
        return Err(format!(
            "params.path must hold 1 to {MAX_INGEST_PATH_BYTES} bytes"
        ));
    }
    let path = Path::new(relative);
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err("params.path must not contain `..`".into());
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("params.path must be relative to the data root".into());
            }
        }
    }
    let resolved = root
        .join(path)
        .canonicalize()
        .map_err(|_| format!("params.path: no dataset at {relative:?} under the data root"))?;
    if !resolved.starts_with(root) {
        return Err("params.path leads outside the data root (through a symbolic link)".into());
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_params_are_checked() {
        let root = Path::new("/");
        assert_eq!(
            JobSpec::parse("tag-stats", &Value::Null, root),
            Ok(JobSpec::TagStats { company: None })
        );
        let spec = JobSpec::parse(
            "keyword-stats",
            &json!({"words": ["Price", "price", "cost"], "company": "acme"}),
            root,
        )
        .expect("valid");
        assert_eq!(
            spec,
            JobSpec::KeywordStats {
                words: vec!["price".into(), "cost".into()],
                company: Some("acme".into())
            }
        );
        assert_eq!(spec.params()["words"], json!(["price", "cost"]));
        for (kind, params) in [
            ("nope", json!({})),
            ("tag-stats", json!([])),
            ("tag-stats", json!({"company": 3})),
            ("tag-stats", json!({"colour": "red"})),
            ("keyword-stats", json!({})),
            ("keyword-stats", json!({"words": []})),
            ("keyword-stats", json!({"words": ["two words"]})),
            ("reload", json!({"path": "x"})),
        ] {
            assert!(
                JobSpec::parse(kind, &params, root).is_err(),
                "{kind} {params}"
            );
        }
    }

    #[test]
    fn ingest_paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::create_dir(root.join("inside")).expect("mkdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), root.join("link")).expect("symlink");
        assert_eq!(resolve_inside("inside", &root), Ok(root.join("inside")));
        assert_eq!(resolve_inside("./inside/", &root), Ok(root.join("inside")));
        for escape in ["../x", "inside/../../x", "/etc", "link", "missing", ""] {
            assert!(resolve_inside(escape, &root).is_err(), "{escape}");
        }
    }
}
