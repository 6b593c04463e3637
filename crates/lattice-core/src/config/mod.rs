//! Run configs: RON parsing with line, column and field path, then semantic validation that
//! names the field and the valid range.

mod flows;
mod schema;
mod validate;

use std::path::{Path, PathBuf};

pub use flows::*;
pub use schema::*;
pub use validate::{ConfigIssue, Limits};

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}:{line}:{column}: {message}\n  at field: {field}\n  fix: {fix}",
        file = path.display()
    )]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        field: String,
        message: String,
        fix: String,
    },
    #[error("{path}: {n} problem(s):\n{list}", path = path.display(), n = issues.len(),
        list = issues.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        issues: Vec<ConfigIssue>,
    },
}

/// A parsed, validated config and the folder its relative paths are taken from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: RunConfig,
    pub path: PathBuf,
    /// The config text's hash, recorded in outputs and checkpoints.
    pub text_hash: u64,
}

impl LoadedConfig {
    /// Resolves a path named in the config against the config file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path)
}

/// Parses and validates config text (what a file holds); `origin` names it in errors and
/// relative paths in it are taken from its folder.
pub fn load_str(text: &str, origin: &Path) -> Result<LoadedConfig, ConfigError> {
    let config = parse(text, origin)?;
    let issues = validate::check(&config, &Limits::default());
    if !issues.is_empty() {
        return Err(ConfigError::Invalid {
            path: origin.to_path_buf(),
            issues,
        });
    }
    Ok(LoadedConfig {
        config,
        path: origin.to_path_buf(),
        text_hash: fnv1a(text.as_bytes()),
    })
}

/// Parses RON text; `origin` names it in errors.
pub fn parse(text: &str, origin: &Path) -> Result<RunConfig, ConfigError> {
    let parse_error =
        |span: ron::error::Span, field: String, code: &ron::Error| ConfigError::Parse {
            path: origin.to_path_buf(),
            line: span.start.line,
            column: span.start.col,
            field: if field.is_empty() || field == "." {
                "(top level)".into()
            } else {
                field
            },
            message: code.to_string(),
            fix: fix_for(code),
        };
    let mut de = ron::de::Deserializer::from_str(text)
        .map_err(|e| parse_error(e.span, String::new(), &e.code))?;
    let result: Result<RunConfig, _> = serde_path_to_error::deserialize(&mut de);
    let config = match result {
        Ok(c) => c,
        Err(e) => {
            let field = e.path().to_string();
            let spanned = de.span_error(e.into_inner());
            return Err(parse_error(spanned.span, field, &spanned.code));
        }
    };
    de.end()
        .map_err(|code| parse_error(de.span_error(code.clone()).span, String::new(), &code))?;
    Ok(config)
}

/// Checks an in-code config the same way `load` checks a file.
pub fn check(config: &RunConfig) -> Result<(), Vec<ConfigIssue>> {
    let issues = validate::check(config, &Limits::default());
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

fn fix_for(code: &ron::Error) -> String {
    use ron::Error as E;
    match code {
        E::NoSuchStructField { expected, .. } => format!(
            "remove or rename the field; this struct accepts: {}",
            expected.join(", ")
        ),
        E::MissingStructField { field, .. } => format!("add `{field}: ...` to this struct"),
        E::NoSuchEnumVariant { expected, .. } => {
            format!("use one of: {}", expected.join(", "))
        }
        E::DuplicateStructField { field, .. } => format!("keep one `{field}`"),
        E::InvalidValueForType { expected, .. } => format!("write a value of type {expected}"),
        E::ExpectedInteger => "write a whole number without quotes, e.g. 24".into(),
        E::IntegerOutOfBounds => "write a non-negative whole number that fits the field".into(),
        E::ExpectedFloat => "write a number, e.g. 0.3".into(),
        E::ExpectedString => "write a quoted string, e.g. \"mask.npy\"".into(),
        E::ExpectedDifferentLength { expected, .. } => format!("give {expected}"),
        _ => "check the syntax against the config reference in README.md and the files in \
              configs/"
            .into(),
    }
}

/// FNV-1a: a stable, dependency-free hash of the config text (not for security).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
