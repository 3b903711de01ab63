//! `--include` / `--exclude` with `aws s3` semantics: every path is included unless a filter
//! says otherwise, filters are applied in the order given, and the last one that matches
//! decides. Patterns are matched against the path relative to the source directory or
//! prefix; `*` matches any run of characters including `/`, `?` one character.

use globset::{Glob, GlobMatcher};

use crate::error::{Error, Result};

/// Whether a filter includes or excludes what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// `--include`: matching paths are transferred, even if an earlier filter excluded them.
    Include,
    /// `--exclude`: matching paths are skipped, unless a later filter includes them.
    Exclude,
}

/// An ordered list of include/exclude patterns.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    rules: Vec<(FilterKind, String, GlobMatcher)>,
}

impl Filters {
    /// Builds filters from `(kind, pattern)` pairs in command-line order.
    pub fn new(rules: impl IntoIterator<Item = (FilterKind, String)>) -> Result<Self> {
        let rules = rules
            .into_iter()
            .map(|(kind, pattern)| {
                let glob = Glob::new(&pattern).map_err(|e| {
                    Error::invalid(format!("filter pattern '{pattern}'"), e.to_string())
                })?;
                Ok((kind, pattern, glob.compile_matcher()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Filters { rules })
    }

    /// True if `relative_path` passes the filters.
    pub fn accepts(&self, relative_path: &str) -> bool {
        self.rules
            .iter()
            .rev()
            .find(|(_, _, m)| m.is_match(relative_path))
            .is_none_or(|(kind, _, _)| *kind == FilterKind::Include)
    }

    /// True if there are no filters.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FilterKind::*;

    fn filters(rules: &[(FilterKind, &str)]) -> Filters {
        Filters::new(rules.iter().map(|(k, p)| (*k, p.to_string()))).unwrap()
    }

    #[test]
    fn everything_is_included_by_default() {
        assert!(Filters::default().accepts("a/b.zip"));
    }

    #[test]
    fn later_filters_win_as_in_aws() {
        let f = filters(&[(Exclude, "*"), (Include, "*.zip")]);
        assert!(f.accepts("a/b.zip"));
        assert!(!f.accepts("a/b.txt"));
        let f = filters(&[(Include, "*.zip"), (Exclude, "*")]);
        assert!(!f.accepts("a/b.zip"));
        let f = filters(&[(Exclude, "logs/*")]);
        assert!(!f.accepts("logs/x/y.txt"));
        assert!(f.accepts("app/logs.txt"));
    }

    #[test]
    fn bad_pattern_is_named() {
        let err = Filters::new([(Include, "a[".to_string())]).unwrap_err();
        assert!(err.to_string().contains("a["), "{err}");
    }
}
