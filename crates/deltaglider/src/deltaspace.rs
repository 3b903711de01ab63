//! Key layout: deltaspaces, reserved names and the delta-eligible extension policy.

/// Name of the reference object inside a deltaspace of the compatible format (the one the
/// Python tool reads).
pub const REFERENCE_NAME: &str = "reference.bin";
/// Name of the reference object inside a deltaspace of the compact format: the xz of the
/// expanded form of the deltaspace's first file (docs/format.md, "Compact format").
pub const COMPACT_REFERENCE_NAME: &str = "reference.dgx";
/// Suffix of delta objects.
pub const DELTA_SUFFIX: &str = ".delta";
/// Prefix under which DeltaGlider keeps internal objects (hidden from listings).
pub const INTERNAL_PREFIX: &str = ".deltaglider/";

/// Extensions the Python tool delta-compresses, matched case-insensitively as suffixes.
#[cfg(test)]
pub const PYTHON_DELTA_EXTENSIONS: &[&str] = &[
    ".tar.gz", ".tar.bz2", ".tar.xz", ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar",
    ".dmg", ".iso", ".pkg", ".deb", ".rpm", ".apk", ".jar", ".war", ".ear",
];

/// Package formats that are zip or tar archives under another name (wheels, NuGet, Rust
/// crates, Ruby gems, VS Code extensions, Android libraries): consecutive releases share most
/// of their bytes, as `.zip` and `.jar` releases do. Eligibility only decides how this tool
/// writes; reading never depends on it, so buckets written by the Python tool (which stores
/// these whole) read as before.
#[cfg(test)]
pub const PACKAGE_DELTA_EXTENSIONS: &[&str] =
    &[".whl", ".nupkg", ".crate", ".gem", ".vsix", ".aar"];

/// The default eligible extensions: the Python tool's list and the package formats.
pub const DEFAULT_DELTA_EXTENSIONS: &[&str] = &[
    ".tar.gz", ".tar.bz2", ".tar.xz", ".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar",
    ".dmg", ".iso", ".pkg", ".deb", ".rpm", ".apk", ".jar", ".war", ".ear", ".whl", ".nupkg",
    ".crate", ".gem", ".vsix", ".aar",
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

/// True if `name` (a key's last segment) is a reference's name, of either format.
pub fn is_reference_name(name: &str) -> bool {
    name == REFERENCE_NAME || name == COMPACT_REFERENCE_NAME
}

/// Key of the compact reference of the deltaspace that `key` belongs to.
pub fn compact_reference_key_for(key: &str) -> String {
    join(of_key(key), COMPACT_REFERENCE_NAME)
}

/// True for keys users never see in listings: references and internal objects.
pub fn is_hidden(key: &str) -> bool {
    is_reference_name(file_name(key)) || is_internal(key)
}

/// True for DeltaGlider's internal objects (under a `.deltaglider/` at any depth), which
/// are neither files nor references, whatever their names.
pub fn is_internal(key: &str) -> bool {
    key.starts_with(INTERNAL_PREFIX) || key.contains(&format!("/{INTERNAL_PREFIX}"))
}

/// Why a user key cannot be stored, if it cannot: it would collide with DeltaGlider's own
/// objects (and, for `reference.bin`, overwrite a reference every delta depends on).
pub fn reserved_key_reason(key: &str) -> Option<String> {
    let name = file_name(key);
    if is_reference_name(name) {
        Some(format!(
            "'{name}' is reserved for DeltaGlider references; rename the file"
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

/// The product a file name belongs to: the name up to its first segment that starts with a
/// digit (a version), segments being separated by `-`, `_`, `.` or `+`, lowercased, `_` read
/// as `-` (wheels write `ansible_core` for `ansible-core`). `botocore-1.44.2.zip`,
/// `botocore-1.44.3-py3-none-any.whl` → `botocore`; `app-v2.zip` → `app`. Versions of one
/// product share a stem; a deltaspace whose files do not mixes products, and deltas between
/// them are large.
pub fn product_stem(name: &str) -> String {
    let mut name = file_name(name).to_lowercase().replace('_', "-");
    // Extensions first (`.tar.gz` is two): alphabetic, short, after a dot.
    for _ in 0..2 {
        match name.rfind('.') {
            Some(dot)
                if dot > 0
                    && (1..=6).contains(&(name.len() - dot - 1))
                    && name[dot + 1..].bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                name.truncate(dot)
            }
            _ => break,
        }
    }
    let mut stem: Vec<&str> = Vec::new();
    for segment in name.split(['-', '.', '+']) {
        let versionish = segment.starts_with(|c: char| c.is_ascii_digit())
            || (segment.len() > 1
                && segment.starts_with('v')
                && segment[1..].starts_with(|c: char| c.is_ascii_digit()));
        if versionish && !stem.is_empty() {
            break;
        }
        stem.push(segment);
    }
    stem.join("-")
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
        assert_eq!(compact_reference_key_for("a/b.zip"), "a/reference.dgx");
        assert!(is_hidden("a/reference.dgx") && reserved_key_reason("reference.dgx").is_some());
        assert_eq!(file_name("a/b/c.zip"), "c.zip");
    }

    #[test]
    fn product_stems() {
        assert_eq!(product_stem("botocore-1.44.2.zip"), "botocore");
        assert_eq!(product_stem("botocore-1.44.3-py3-none-any.whl"), "botocore");
        assert_eq!(product_stem("ansible_core-2.17.0.tar.gz"), "ansible-core");
        assert_eq!(product_stem("ansible-core-2.17.1.tar.gz"), "ansible-core");
        assert_eq!(product_stem("rel/App-v2.zip"), "app");
        assert_eq!(product_stem("setup.zip"), "setup");
        assert_ne!(
            product_stem("ansible-9.0.zip"),
            product_stem("botocore-1.0.zip")
        );
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
    fn eligibility_is_python_list_and_packages() {
        let p = DeltaPolicy::default();
        for n in ["a.zip", "A.ZIP", "x.tar.gz", "x.jar", "y.tgz", "z.deb"] {
            assert!(p.is_eligible(n), "{n}");
        }
        for n in [
            "b-1.0-py3-none-any.whl",
            "N.1.0.nupkg",
            "c-0.1.0.crate",
            "g-1.gem",
            "e.VSIX",
            "l.aar",
        ] {
            assert!(p.is_eligible(n), "{n}");
        }
        for n in ["a.txt", "zip", "a.zip.txt", "a.whl.sig"] {
            assert!(!p.is_eligible(n), "{n}");
        }
        let both: Vec<&str> = PYTHON_DELTA_EXTENSIONS
            .iter()
            .chain(PACKAGE_DELTA_EXTENSIONS)
            .copied()
            .collect();
        assert_eq!(DEFAULT_DELTA_EXTENSIONS, both.as_slice());
        let custom = DeltaPolicy::parse("+bin");
        assert!(custom.is_eligible("a.bin") && custom.is_eligible("a.whl"));
        let only = DeltaPolicy::parse(".bin, img");
        assert!(only.is_eligible("x.img") && !only.is_eligible("x.zip"));
    }
}
