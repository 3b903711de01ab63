//! Key layout: deltaspaces, reserved names and the delta-eligible extension policy.

/// Name of the reference object inside a deltaspace.
pub const REFERENCE_NAME: &str = "reference.bin";
/// Suffix of delta objects.
pub const DELTA_SUFFIX: &str = ".delta";
/// Prefix under which DeltaGlider keeps internal objects (hidden from listings).
pub const INTERNAL_PREFIX: &str = ".deltaglider/";

/// Extensions the Python tool delta-compresses, matched case-insensitively as suffixes.
pub const DEFAULT_DELTA_EXTENSIONS: &[&str] = &[
    ".tar.gz", ".tar.bz2", ".tar.xz", ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar",
    ".dmg", ".iso", ".pkg", ".deb", ".rpm", ".apk", ".jar", ".war", ".ear",
];

/// The deltaspace of a key: everything before its last `/` (empty for the bucket root).
pub fn of_key(key: &str) -> &str {
    key.rfind('/').map_or("", |i| &key[..i])
}

/// The last path segment of a key.
pub fn file_name(key: &str) -> &str {
    key.rfind('/').map_or(key, |i| &key[i + 1..])
}

/// Joins a deltaspace and a name into a key.
pub fn join(deltaspace: &str, name: &str) -> String {
    if deltaspace.is_empty() {
        name.to_string()
    } else {
        format!("{deltaspace}/{name}")
    }
}

/// Key of the reference of the deltaspace that `key` belongs to.
pub fn reference_key_for(key: &str) -> String {
    join(of_key(key), REFERENCE_NAME)
}

/// True for keys users never see in listings: references and internal objects.
pub fn is_hidden(key: &str) -> bool {
    file_name(key) == REFERENCE_NAME
        || key.starts_with(INTERNAL_PREFIX)
        || key.contains(&format!("/{INTERNAL_PREFIX}"))
}

/// Why a user key cannot be stored, if it cannot: it would collide with DeltaGlider's own
/// objects (and, for `reference.bin`, overwrite a reference every delta depends on).
pub fn reserved_key_reason(key: &str) -> Option<String> {
    let name = file_name(key);
    if name == REFERENCE_NAME {
        Some(format!(
            "'{REFERENCE_NAME}' is reserved for DeltaGlider references; rename the file"
        ))
    } else if name.ends_with(DELTA_SUFFIX) {
        Some(format!(
            "names ending in '{DELTA_SUFFIX}' are reserved for DeltaGlider deltas; rename the file"
        ))
    } else if key.starts_with(INTERNAL_PREFIX) || key.contains(&format!("/{INTERNAL_PREFIX}")) {
        Some(format!(
            "'{INTERNAL_PREFIX}' is reserved for DeltaGlider internal objects"
        ))
    } else if name.is_empty() {
        Some("the key names a directory, not a file".to_string())
    } else {
        None
    }
}

/// Which file names are stored as deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaPolicy {
    extensions: Vec<String>,
}

impl Default for DeltaPolicy {
    fn default() -> Self {
        DeltaPolicy::new(DEFAULT_DELTA_EXTENSIONS.iter().map(|s| s.to_string()))
    }
}

impl DeltaPolicy {
    /// A policy from a list of extensions (with or without the leading dot).
    pub fn new(extensions: impl IntoIterator<Item = String>) -> Self {
        let extensions = extensions
            .into_iter()
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e.starts_with('.') {
                    e
                } else {
                    format!(".{e}")
                }
            })
            .collect();
        DeltaPolicy { extensions }
    }

    /// Parses a comma-separated list; a leading `+` adds to the defaults instead of replacing.
    pub fn parse(spec: &str) -> Self {
        let (base, list) = match spec.strip_prefix('+') {
            Some(rest) => (DEFAULT_DELTA_EXTENSIONS.to_vec(), rest),
            None => (Vec::new(), spec),
        };
        DeltaPolicy::new(
            base.into_iter()
                .map(str::to_string)
                .chain(list.split(',').map(str::to_string)),
        )
    }

    /// True if `name` should be delta-compressed.
    pub fn is_eligible(&self, name: &str) -> bool {
        let lower = name.to_lowercase();
        self.extensions.iter().any(|e| lower.ends_with(e.as_str()))
    }

    /// The configured extensions.
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltaspaces() {
        assert_eq!(of_key("releases/v1/app.zip"), "releases/v1");
        assert_eq!(of_key("app.zip"), "");
        assert_eq!(reference_key_for("a/b.zip"), "a/reference.bin");
        assert_eq!(reference_key_for("b.zip"), "reference.bin");
        assert_eq!(file_name("a/b/c.zip"), "c.zip");
    }

    #[test]
    fn hidden_keys() {
        assert!(is_hidden("reference.bin"));
        assert!(is_hidden("x/reference.bin"));
        assert!(is_hidden(".deltaglider/tmp/x"));
        assert!(is_hidden("a/.deltaglider/stats.json"));
        assert!(!is_hidden("x/reference.bin.txt"));
    }

    #[test]
    fn reserved_names() {
        assert!(reserved_key_reason("a/reference.bin").is_some());
        assert!(reserved_key_reason("a/b.zip.delta").is_some());
        assert!(reserved_key_reason("a/").is_some());
        assert!(reserved_key_reason("a/b.zip").is_none());
    }

    #[test]
    fn eligibility_matches_python_list() {
        let p = DeltaPolicy::default();
        for n in ["a.zip", "A.ZIP", "x.tar.gz", "x.jar", "y.tgz", "z.deb"] {
            assert!(p.is_eligible(n), "{n}");
        }
        for n in ["a.whl", "a.txt", "zip", "a.zip.txt"] {
            assert!(!p.is_eligible(n), "{n}");
        }
        let custom = DeltaPolicy::parse("+whl");
        assert!(custom.is_eligible("a.whl") && custom.is_eligible("a.zip"));
        let only = DeltaPolicy::parse(".bin, img");
        assert!(only.is_eligible("x.img") && !only.is_eligible("x.zip"));
    }
}
